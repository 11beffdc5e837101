//! Any bytes given to the `.npz` readers give a data set or an error, never a
//! panic, an abort or a huge allocation (run with `-rss_limit_mb`). Both the
//! plain reader (`read_npz_bytes`, the code path of `read_npz` after the file
//! read) and the same reader asked for targets per position
//! (`read_npz_bytes_as(.., Some(Targets::PerPosition))`, with (N, n, c) /
//! (N, n) targets, as the sequence program reads them) run on every input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ds) = convexformer::data::npz::read_npz_bytes(data) {
        // What the reader accepts is a valid data set.
        ds.validate()
            .expect("the reader returned an invalid data set");
    }
    let per_position = Some(convexformer::data::Targets::PerPosition);
    if let Ok(ds) = convexformer::data::npz::read_npz_bytes_as(data, per_position) {
        ds.validate()
            .expect("the sequence reader returned an invalid data set");
    }
});
