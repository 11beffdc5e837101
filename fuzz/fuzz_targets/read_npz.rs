//! Any bytes given to the `.npz` readers give a data set or an error, never a
//! panic, an abort or a huge allocation (run with `-rss_limit_mb`). Both the
//! plain reader (`read_npz_bytes`, the code path of `read_npz` after the file
//! read) and the sequence program's reader (`read_sequence_npz_bytes`, the
//! same archive and `.npy` header code with (N, n, c) / (N, n) targets) run
//! on every input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ds) = convexformer::data::npz::read_npz_bytes(data) {
        // What the reader accepts is a valid data set.
        ds.validate()
            .expect("the reader returned an invalid data set");
    }
    if let Ok(ds) = convexformer::sequence::data::read_sequence_npz_bytes(data) {
        ds.validate()
            .expect("the sequence reader returned an invalid data set");
    }
});
