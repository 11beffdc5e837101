//! A fit's data on one shard of a data-parallel run: the checks every shard
//! makes together (same shape, same classes) and the program on its rows.

use super::{Fit, Setup};
use crate::comm::Communicator;
use crate::data::Dataset;
use crate::error::{invalid, Result};
use crate::operator::{GateKind, Sharded, TokenOperator};
use crate::problem::Problem;
use std::borrow::Cow;

/// One shard's samples, checked against the other shards'.
pub(super) struct ShardData<'a> {
    pub data: Cow<'a, Dataset<'a>>,
    pub comm: &'a dyn Communicator,
}

impl<'a> ShardData<'a> {
    /// Widens one-hot targets to the classes of all shards and checks that
    /// every shard holds data of one shape (all shards get the same error).
    pub fn new(fit: &Fit, shard: &'a Dataset<'a>, comm: &'a dyn Communicator) -> Result<Self> {
        let data = match with_all_classes(shard, comm)? {
            Some(widened) => Cow::Owned(widened),
            None => Cow::Borrowed(shard),
        };
        check_same_shape(&data, comm)?;
        if comm.size() > 1 && fit.gates.is_some_and(|g| g.kind == GateKind::Samples) {
            return invalid(
                "gates drawn from the samples differ between shards: use Gaussian gates \
                 (--gate-kind gaussian) in a data-parallel fit",
            );
        }
        fit.loss.check_targets(&data)?;
        Ok(ShardData { data, comm })
    }

    /// The program on this shard's rows, its sums taken over all shards.
    pub fn problem<'s>(
        &'s self,
        fit: &Fit,
        setup: &'s Setup,
    ) -> Result<Problem<'s, Sharded<'s, TokenOperator<'s>>>> {
        let op = Sharded::new(
            TokenOperator::new(&self.data, setup.masks.as_ref()),
            self.comm,
        );
        Problem::with_operator(
            op,
            &self.data.y,
            fit.loss,
            fit.program.penalty(),
            1.0,
            fit.intercept,
        )
    }
}

/// Class labels count their classes from the largest label a file holds,
/// so a shard that lacks the last classes reads fewer: every shard takes the
/// largest count of all (one-hot targets widened). None where nothing changes.
pub(crate) fn with_all_classes<'a>(
    shard: &'a Dataset<'_>,
    comm: &dyn Communicator,
) -> Result<Option<Dataset<'a>>> {
    let mut counts = vec![0.0; comm.size()];
    if shard.labels.is_some() {
        counts[comm.rank()] = shard.n_outputs as f64;
    }
    comm.sum(&mut counts);
    let classes = counts.iter().fold(0.0f64, |a, &b| a.max(b)) as usize;
    match &shard.labels {
        Some(labels) if shard.n_outputs < classes => Dataset::classes(
            &shard.x[..],
            (shard.n_samples, shard.n_tokens, shard.n_features),
            labels.clone(),
            classes,
            shard.targets,
        )
        .map(Some),
        _ => Ok(None),
    }
}

/// Every shard must hold samples of the same shape (tokens, features,
/// outputs, targets per sample or per position): checked on all shards at
/// once, so all return the same error.
pub(crate) fn check_same_shape(shard: &Dataset, comm: &dyn Communicator) -> Result<()> {
    let own = [
        shard.n_tokens as f64,
        shard.n_features as f64,
        shard.n_outputs as f64,
        shard.rows_per_sample() as f64,
        f64::from(u8::from(shard.labels.is_some())),
    ];
    let mut v: Vec<f64> = own.iter().chain(own.iter()).copied().collect();
    for x in &mut v[own.len()..] {
        *x *= *x;
    }
    comm.sum(&mut v);
    let p = comm.size() as f64;
    let (sum, sq) = v.split_at(own.len());
    // All equal if and only if the spread Σx² − (Σx)²/P is zero.
    if sum
        .iter()
        .zip(sq)
        .any(|(s, q)| (q - s * s / p).abs() > 1e-9 * q.max(1.0))
    {
        return invalid(format!(
            "the shards do not hold data of one shape (this one: {} tokens × {} features, {} \
             outputs): every shard must come from the same data set",
            shard.n_tokens, shard.n_features, shard.n_outputs
        ));
    }
    Ok(())
}
