//! The losses of [`crate::loss`] as candle tensor ops, so autograd can train
//! through them. Each matches `Loss::value` of the core (tested to 1e-12 in f64).

use crate::loss::Loss;
use candle_core::{Result, Tensor};

/// L(ŷ_i, y_i) for every row: `yhat` and `y` are B×c, the result has B entries.
///
/// - squared: ½‖ŷ − y‖²;
/// - logistic (c = 1, y ∈ {−1, +1}): softplus(m) = max(m, 0) + log(1 + e^{−|m|}), m = −yŷ;
/// - cross-entropy: logsumexp(ŷ) − ⟨y, ŷ⟩ (the max is subtracted as a constant:
///   logsumexp is exact for any shift, so the gradient is unchanged);
/// - Huber(δ) per coordinate: with a = |r|, q = min(a, δ): ½q² + δ(a − q).
pub fn per_sample(loss: Loss, yhat: &Tensor, y: &Tensor) -> Result<Tensor> {
    match loss {
        Loss::Squared => (yhat - y)?.sqr()?.sum(1)? * 0.5,
        Loss::Logistic => {
            let m = (yhat * y)?.neg()?;
            let soft = (m.relu()? + (m.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
            soft.sum(1)
        }
        Loss::CrossEntropy => {
            let mx = yhat.max_keepdim(1)?.detach();
            let lse = (yhat.broadcast_sub(&mx)?.exp()?.sum_keepdim(1)?.log()? + mx)?;
            lse.squeeze(1)? - (yhat * y)?.sum(1)?
        }
        Loss::Huber(delta) => {
            let a = (yhat - y)?.abs()?;
            let q = a.clamp(0.0, delta)?;
            let v = ((q.sqr()? * 0.5)? + ((a - &q)? * delta)?)?;
            v.sum(1)
        }
    }
}

/// Σ_i L(ŷ_i, y_i), a scalar tensor.
pub fn total(loss: Loss, yhat: &Tensor, y: &Tensor) -> Result<Tensor> {
    per_sample(loss, yhat, y)?.sum_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::SampleLoss;
    use candle_core::Device;
    use rand::{Rng, SeedableRng};

    #[test]
    fn candle_losses_match_the_core_to_1e_12() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let dev = Device::Cpu;
        let b = 200;
        for (loss, c) in [
            (Loss::Squared, 3),
            (Loss::Logistic, 1),
            (Loss::CrossEntropy, 4),
            (Loss::Huber(0.7), 2),
        ] {
            // Predictions spread over several scales, including large margins.
            let yhat: Vec<f64> = (0..b * c)
                .map(|k| rng.random_range(-1.0..1.0) * [0.1, 3.0, 40.0][k % 3])
                .collect();
            let y: Vec<f64> = match loss {
                Loss::Logistic => (0..b)
                    .map(|_| if rng.random_bool(0.5) { 1.0 } else { -1.0 })
                    .collect(),
                Loss::CrossEntropy => (0..b)
                    .flat_map(|_| {
                        let l = rng.random_range(0..c);
                        (0..c).map(move |j| if j == l { 1.0 } else { 0.0 })
                    })
                    .collect(),
                _ => (0..b * c).map(|_| rng.random_range(-2.0..2.0)).collect(),
            };
            let th = Tensor::from_vec(yhat.clone(), (b, c), &dev).unwrap();
            let ty = Tensor::from_vec(y.clone(), (b, c), &dev).unwrap();
            let got = per_sample(loss, &th, &ty)
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            for i in 0..b {
                let want = loss.value(&yhat[i * c..(i + 1) * c], &y[i * c..(i + 1) * c]);
                assert!(
                    (got[i] - want).abs() <= 1e-12 * want.abs().max(1.0),
                    "{}: sample {i}: candle {} vs core {}",
                    loss.name(),
                    got[i],
                    want
                );
            }
        }
    }

    #[test]
    fn candle_loss_gradients_match_the_core() {
        let dev = Device::Cpu;
        for (loss, yhat, y) in [
            (Loss::Logistic, vec![0.0, 2.5, -3.0], vec![1.0, -1.0, 1.0]),
            (Loss::Huber(1.0), vec![0.3, 2.5, -3.0], vec![0.0, 0.0, 0.0]),
        ] {
            let v = candle_core::Var::from_tensor(
                &Tensor::from_vec(yhat.clone(), (3, 1), &dev).unwrap(),
            )
            .unwrap();
            let ty = Tensor::from_vec(y.clone(), (3, 1), &dev).unwrap();
            let g = total(loss, v.as_tensor(), &ty).unwrap().backward().unwrap();
            let got = g
                .get(&v)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            for i in 0..3 {
                let mut want = [0.0];
                loss.value_grad(&yhat[i..i + 1], &y[i..i + 1], &mut want);
                assert!(
                    (got[i] - want[0]).abs() < 1e-14,
                    "{}: {} vs {}",
                    loss.name(),
                    got[i],
                    want[0]
                );
            }
        }
    }
}
