//! Minibatches drawn without replacement: a fresh permutation of the
//! training examples every epoch, the remainder of an epoch dropped.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// The epoch's order, where the next minibatch starts, and the shuffling
/// stream: exactly what a resumed run needs to draw the same batches.
#[derive(Clone, Debug)]
pub struct Minibatches {
    order: Vec<u32>,
    pos: usize,
    rng: ChaCha8Rng,
}

impl Minibatches {
    /// Over `items` (example indices), shuffled by `rng` at the first draw.
    pub fn new(items: Vec<u32>, rng: ChaCha8Rng) -> Self {
        let pos = items.len();
        Minibatches {
            order: items,
            pos,
            rng,
        }
    }

    /// The next `size` examples (all of them, reshuffled every draw, when
    /// `size` is at least their number).
    pub fn next(&mut self, size: usize) -> &[u32] {
        let size = size.min(self.order.len());
        if self.pos + size > self.order.len() {
            self.order.shuffle(&mut self.rng);
            self.pos = 0;
        }
        let start = self.pos;
        self.pos += size;
        &self.order[start..self.pos]
    }

    /// (order, position, word position of the stream), for a saved state.
    pub fn state(&self) -> (&[u32], usize, u128) {
        (&self.order, self.pos, self.rng.get_word_pos())
    }

    /// Continues from a saved [`Minibatches::state`] (checked by the caller
    /// against this run's examples).
    pub fn restore(&mut self, order: Vec<u32>, pos: usize, word_pos: u128) {
        self.order = order;
        self.pos = pos.min(self.order.len());
        self.rng.set_word_pos(word_pos);
    }
}
