//! `.safetensors` data files, and [`read_dataset`], which picks the reader by
//! the file's extension.
//!
//! The file holds the same arrays as a `.npz` (see [`super::npz`]): a tensor
//! `X` (F32 or F64) of shape N×n×d and a tensor `y`, floats of shape (N) or
//! (N, c) for real targets or integers of shape (N) for class labels (targets
//! per position: floats (N, n, c) or integers (N, n), as in `.npz`). The
//! safetensors header gives every tensor's shape, type and byte range, and the
//! parser checks them against the file's length before anything is converted,
//! so a corrupt header cannot trigger a huge allocation.

use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype as StDtype, SafeTensors};

use super::npz::{dataset_from_arrays, format_error, io_error, Dtype, RawArray, Values};
use super::{Dataset, Targets};
use crate::error::{Error, Result};

/// Reads a data set from a `.npz` or `.safetensors` file, by its extension.
pub fn read_dataset(path: &Path) -> Result<Dataset<'static>> {
    read_inputs(path, true).map(|(ds, _)| ds)
}

/// As [`read_dataset`], but `y` may be missing when `require_y` is false:
/// the data set then holds zero targets and the flag is false.
pub fn read_inputs(path: &Path, require_y: bool) -> Result<(Dataset<'static>, bool)> {
    read_inputs_as(path, require_y, Some(Targets::PerSample))
}

/// As [`read_inputs`], with targets per sample or per position as `layout`
/// asks (`None`: as `y`'s rank says; see [`super::npz::read_npz_as`]).
pub fn read_inputs_as(
    path: &Path,
    require_y: bool,
    layout: Option<Targets>,
) -> Result<(Dataset<'static>, bool)> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("npz") => super::npz::read_npz_as(path, require_y, layout),
        Some("safetensors") => {
            if path.is_dir() {
                return Err(format_error(path, "is a directory, not a .safetensors file"));
            }
            let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
            read_from(&bytes, path, require_y, layout)
        }
        _ => Err(Error::Invalid(format!(
            "cannot tell the format of data file {}: supported extensions are .npz and .safetensors",
            path.display()
        ))),
    }
}

/// Reads a data set from a `.safetensors` file.
pub fn read_safetensors(path: &Path) -> Result<Dataset<'static>> {
    if path.is_dir() {
        return Err(format_error(
            path,
            "is a directory, not a .safetensors file",
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    read_from(&bytes, path, true, Some(Targets::PerSample)).map(|(ds, _)| ds)
}

/// Reads a data set from the bytes of a `.safetensors` file, by the same code
/// as [`read_safetensors`] (errors name the path `<memory>`).
pub fn read_safetensors_bytes(bytes: &[u8]) -> Result<Dataset<'static>> {
    read_from(bytes, Path::new("<memory>"), true, Some(Targets::PerSample)).map(|(ds, _)| ds)
}

/// Writes `ds` as `.safetensors`: `X` as F64 (N, n, d), `y` as F64 (N, c) for
/// real targets or I64 (N) for class labels; per position F64 (N, n, c) or
/// I64 (N, n).
pub fn write_safetensors(path: &Path, ds: &Dataset) -> Result<()> {
    ds.validate()?;
    let (n, t, d, c) = ds.shape();
    let x_bytes = le_bytes(ds.x.iter().map(|v| v.to_le_bytes()));
    let rows: &[usize] = match ds.targets {
        Targets::PerSample => &[n],
        Targets::PerPosition => &[n, t],
    };
    let (y_dtype, y_shape, y_bytes) = match &ds.labels {
        Some(l) => (
            StDtype::I64,
            rows.to_vec(),
            le_bytes(l.iter().map(|&v| (v as i64).to_le_bytes())),
        ),
        None => (
            StDtype::F64,
            [rows, &[c]].concat(),
            le_bytes(ds.y.iter().map(|v| v.to_le_bytes())),
        ),
    };
    let view_error = |e: safetensors::SafeTensorError| {
        Error::Invalid(format!("data set does not match its shape: {e}"))
    };
    let x = TensorView::new(StDtype::F64, vec![n, t, d], &x_bytes).map_err(view_error)?;
    let y = TensorView::new(y_dtype, y_shape, &y_bytes).map_err(view_error)?;
    let out = safetensors::serialize([("X", x), ("y", y)], None)
        .map_err(|e| format_error(path, format!("cannot serialize: {e}")))?;
    crate::atomic::write(path, out)
}

fn le_bytes<const K: usize>(values: impl Iterator<Item = [u8; K]>) -> Vec<u8> {
    values.flatten().collect()
}

/// The shared reader: `path` only names the source in errors.
fn read_from(
    bytes: &[u8],
    path: &Path,
    require_y: bool,
    layout: Option<Targets>,
) -> Result<(Dataset<'static>, bool)> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        format_error(
            path,
            format!("not a valid .safetensors file, or truncated: {e}"),
        )
    })?;
    let mut names: Vec<&str> = st.names();
    names.sort_unstable();
    let has_y = names.contains(&"y");
    for want in ["X", "y"] {
        if !names.contains(&want) && (want == "X" || require_y) {
            return Err(format_error(
                path,
                format!(
                    "no tensor '{want}' in the file, which holds {names:?}; {}",
                    super::npz::expected_arrays(layout)
                ),
            ));
        }
    }
    let x = raw_array(&st, "X", path, None)?;
    let y = if has_y {
        raw_array(&st, "y", path, None)?
    } else {
        super::npz::zero_targets(&x, layout)?
    };
    Ok((dataset_from_arrays(x, y, path, layout)?, has_y))
}

/// The samples `rows` of a `.safetensors` data file (targets per sample or
/// per position, as `layout` says), reading only their bytes of `X` and
/// `y`: the file is memory-mapped, so a shard of a data-parallel fit reads
/// its block and not the rest.
pub fn read_safetensors_rows(
    path: &Path,
    rows: std::ops::Range<usize>,
    layout: Targets,
) -> Result<Dataset<'static>> {
    let file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    // SAFETY: the map is read only while this function runs; a file changed
    // by another process meanwhile gives wrong values, not unsafety beyond
    // what any reader of a changing file sees (safetensors' own advice).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| io_error(path, e))?;
    let st = SafeTensors::deserialize(&map).map_err(|e| {
        format_error(
            path,
            format!("not a valid .safetensors file, or truncated: {e}"),
        )
    })?;
    for want in ["X", "y"] {
        if st.tensor(want).is_err() {
            return Err(format_error(
                path,
                format!(
                    "no tensor '{want}' in the file; {}",
                    super::npz::expected_arrays(Some(layout))
                ),
            ));
        }
    }
    let x = raw_array(&st, "X", path, Some(rows.clone()))?;
    let y = raw_array(&st, "y", path, Some(rows.clone()))?;
    let Values::Int(block) = &y.values else {
        return dataset_from_arrays(x, y, path, Some(layout));
    };
    // Class labels: the classes are counted over the whole file (its y is
    // small), not over the block, which may lack the last ones.
    let all = raw_array(&st, "y", path, None)?;
    let classes = match &all.values {
        Values::Int(v) => v.iter().copied().max().unwrap_or(0) as usize + 1,
        Values::Float(_) => unreachable!("one tensor, one dtype"),
    };
    let (Values::Float(xv), &[_, n, d]) = (&x.values, &x.shape[..]) else {
        return dataset_from_arrays(x, y, path, Some(layout));
    };
    // Labels: one per sample (N), or one per position (N×n).
    let label_rank = if layout == Targets::PerSample { 1 } else { 2 };
    if y.shape.len() != label_rank || block.iter().any(|&l| l < 0) {
        // Not per-sample labels: the general reader says what is wrong.
        return dataset_from_arrays(x, y, path, Some(layout));
    }
    let labels = block.iter().map(|&l| l as usize).collect();
    Dataset::classes(xv.clone(), (rows.len(), n, d), labels, classes, layout)
}

/// Tensor `name` converted to f64 or i64 values (safetensors data is
/// little-endian and C-ordered); only the entries of `rows` along the first
/// axis when given.
fn raw_array(
    st: &SafeTensors<'_>,
    name: &str,
    path: &Path,
    rows: Option<std::ops::Range<usize>>,
) -> Result<RawArray> {
    let view = st
        .tensor(name)
        .map_err(|e| format_error(path, format!("cannot read tensor '{name}': {e}")))?;
    let mut shape = view.shape().to_vec();
    let mut data = view.data();
    if let Some(r) = rows {
        let n = shape.first().copied().unwrap_or(0);
        if r.start > r.end || r.end > n {
            return Err(format_error(
                path,
                format!(
                    "tensor '{name}' has {n} rows, rows {}..{} were asked for",
                    r.start, r.end
                ),
            ));
        }
        // Bytes per row, from the tensor's own length (no dtype table here).
        let per_row = data.len().checked_div(n).unwrap_or(0);
        data = &data[r.start * per_row..r.end * per_row];
        shape[0] = r.len();
    }
    let (dtype, values) = match view.dtype() {
        StDtype::F32 => (Dtype::F32, floats(data, f32::from_le_bytes, f64::from)),
        StDtype::F64 => (Dtype::F64, floats(data, f64::from_le_bytes, |v| v)),
        StDtype::I8 => (Dtype::I8, ints(data, i8::from_le_bytes, i64::from)),
        StDtype::I16 => (Dtype::I16, ints(data, i16::from_le_bytes, i64::from)),
        StDtype::I32 => (Dtype::I32, ints(data, i32::from_le_bytes, i64::from)),
        StDtype::I64 => (Dtype::I64, ints(data, i64::from_le_bytes, |v| v)),
        StDtype::U8 => (Dtype::U8, ints(data, u8::from_le_bytes, i64::from)),
        StDtype::U16 => (Dtype::U16, ints(data, u16::from_le_bytes, i64::from)),
        StDtype::U32 => (Dtype::U32, ints(data, u32::from_le_bytes, i64::from)),
        // Values above i64::MAX saturate; they are invalid labels anyway.
        StDtype::U64 => (
            Dtype::U64,
            ints(data, u64::from_le_bytes, |v| {
                i64::try_from(v).unwrap_or(i64::MAX)
            }),
        ),
        other => {
            return Err(format_error(
                path,
                format!(
                    "tensor '{name}' has unsupported dtype {other:?}; expected F32 or F64 \
                     (and for y also I8..I64, U8..U64 class labels)"
                ),
            ))
        }
    };
    Ok(RawArray {
        shape,
        dtype,
        values,
    })
}

fn floats<T, const K: usize>(
    data: &[u8],
    from_le: fn([u8; K]) -> T,
    to_f64: fn(T) -> f64,
) -> Values {
    Values::Float(decode(data, from_le, to_f64))
}

fn ints<T, const K: usize>(data: &[u8], from_le: fn([u8; K]) -> T, to_i64: fn(T) -> i64) -> Values {
    Values::Int(decode(data, from_le, to_i64))
}

/// The K-byte little-endian values of `data`, converted. The safetensors
/// parser has checked that the length is shape × K; unaligned data is fine.
fn decode<T, U, const K: usize>(
    data: &[u8],
    from_le: fn([u8; K]) -> T,
    conv: fn(T) -> U,
) -> Vec<U> {
    data.chunks_exact(K)
        .map(|c| {
            let mut b = [0u8; K];
            b.copy_from_slice(c);
            conv(from_le(b))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Serialized tensors given as (name, dtype, shape, raw bytes).
    fn st_bytes(tensors: &[(&str, StDtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
        let views: HashMap<String, TensorView<'_>> = tensors
            .iter()
            .map(|(n, t, s, b)| (n.to_string(), TensorView::new(*t, s.clone(), b).unwrap()))
            .collect();
        safetensors::serialize(views, None).unwrap()
    }

    fn f32s(v: impl IntoIterator<Item = f32>) -> Vec<u8> {
        v.into_iter().flat_map(f32::to_le_bytes).collect()
    }

    fn f64s(v: impl IntoIterator<Item = f64>) -> Vec<u8> {
        v.into_iter().flat_map(f64::to_le_bytes).collect()
    }

    fn x_values(n: usize) -> Vec<f64> {
        (0..n * 4 * 3).map(|v| v as f64 * 0.5 - 3.0).collect()
    }

    fn err_msg(r: Result<Dataset<'static>>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn reads_f32_x_real_y_and_labels() {
        let x32 = f32s(x_values(3).into_iter().map(|v| v as f32));
        let ds = read_safetensors_bytes(&st_bytes(&[
            ("X", StDtype::F32, vec![3, 4, 3], x32.clone()),
            ("y", StDtype::F32, vec![3], f32s([1.0, 2.0, 3.5])),
        ]))
        .unwrap();
        assert_eq!(ds.shape(), (3, 4, 3, 1));
        assert_eq!(ds.x, x_values(3));
        assert_eq!(ds.y, vec![1.0, 2.0, 3.5]);
        let labels: [(StDtype, Vec<u8>); 3] = [
            (
                StDtype::I64,
                [2i64, 0, 1].iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            (
                StDtype::I32,
                [2i32, 0, 1].iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            (StDtype::U8, vec![2, 0, 1]),
        ];
        for (dtype, y) in labels {
            let ds = read_safetensors_bytes(&st_bytes(&[
                ("X", StDtype::F32, vec![3, 4, 3], x32.clone()),
                ("y", dtype, vec![3], y),
            ]))
            .unwrap();
            assert_eq!(ds.labels.as_deref(), Some(&[2, 0, 1][..]), "{dtype:?}");
            assert_eq!(ds.n_outputs, 3);
        }
    }

    #[test]
    fn file_round_trips_and_dispatch() {
        let dir = tempfile::tempdir().unwrap();
        let real = Dataset::new_real(x_values(2), (2, 4, 3), vec![1.0, 2.0, 3.0, 4.0], 2).unwrap();
        let classes = Dataset::new_classes(x_values(2), (2, 4, 3), vec![1, 0], 2).unwrap();
        for ds in [real, classes] {
            for name in ["d.safetensors", "d.npz", "D.NPZ"] {
                let p = dir.path().join(name);
                if name.ends_with("safetensors") {
                    write_safetensors(&p, &ds).unwrap();
                } else {
                    super::super::npz::write_npz(&p, &ds).unwrap();
                }
                let back = read_dataset(&p).unwrap();
                assert_eq!(back.shape(), ds.shape());
                assert_eq!(back.x, ds.x);
                assert_eq!(back.y, ds.y);
                assert_eq!(back.labels, ds.labels);
            }
        }
        let msg = read_dataset(&dir.path().join("d.csv"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(".npz") && msg.contains(".safetensors"),
            "{msg}"
        );
        assert!(read_dataset(&dir.path().join("noext")).is_err());
    }

    #[test]
    fn errors_name_the_problem() {
        let x = || ("X", StDtype::F64, vec![2, 4, 3], f64s(x_values(2)));
        let y = || ("y", StDtype::F64, vec![2], f64s([1.0, 2.0]));
        let cases: Vec<(Vec<u8>, &[&str])> = vec![
            (
                b"not a safetensors file".to_vec(),
                &["not a valid .safetensors"],
            ),
            (st_bytes(&[x()]), &["'y'", "[\"X\"]"]),
            (st_bytes(&[y()]), &["'X'", "[\"y\"]"]),
            (
                st_bytes(&[("X", StDtype::F64, vec![2, 12], f64s(x_values(2))), y()]),
                &["X", "3-D", "[2, 12]"],
            ),
            (
                st_bytes(&[("X", StDtype::F16, vec![2, 4, 3], vec![0; 48]), y()]),
                &["X", "F16"],
            ),
            (
                st_bytes(&[x(), ("y", StDtype::F64, vec![3], f64s([1.0, 2.0, 3.0]))]),
                &["N = 2", "y has 3"],
            ),
            (
                st_bytes(&[x(), ("y", StDtype::U8, vec![2, 1], vec![0, 1])]),
                &["1-D", "labels"],
            ),
            (
                st_bytes(&[x(), ("y", StDtype::F64, vec![2], f64s([1.0, f64::NAN]))]),
                &["y[1]", "NaN"],
            ),
        ];
        for (bytes, words) in cases {
            let msg = err_msg(read_safetensors_bytes(&bytes));
            for w in words {
                assert!(msg.contains(w), "{msg:?} lacks {w:?}");
            }
        }
        let good = st_bytes(&[x(), y()]);
        for cut in [0, 7, 8, 20, good.len() - 1] {
            assert!(read_safetensors_bytes(&good[..cut]).is_err(), "cut {cut}");
        }
        let dir = tempfile::tempdir().unwrap();
        let e = read_safetensors(&dir.path().join("none.safetensors")).unwrap_err();
        assert!(matches!(e, Error::Io { .. }) && e.to_string().contains("none.safetensors"));
    }
}
