use super::*;

#[test]
fn shard_ranges_cover_the_samples_once_in_order() {
    for n in [0, 1, 5, 7, 64] {
        for size in 1..6 {
            let ranges: Vec<_> = (0..size).map(|r| shard_range(n, r, size)).collect();
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges[size - 1].end, n);
            for w in ranges.windows(2) {
                assert_eq!(w[0].end, w[1].start);
                assert!(w[0].len() >= w[1].len() && w[0].len() <= w[1].len() + 1);
            }
        }
    }
}

#[test]
fn a_thread_group_sums_in_rank_order_and_agrees_on_flags() {
    let members = ThreadGroup::new(3);
    let out: Vec<(Vec<f64>, bool, bool, ReduceStats)> = std::thread::scope(|s| {
        let handles: Vec<_> = members
            .iter()
            .map(|m| {
                s.spawn(move || {
                    let r = m.rank() as f64;
                    let mut v = vec![r, 10.0 * r, 0.1];
                    m.sum(&mut v);
                    let any = m.any(m.rank() == 2);
                    let none = m.any(false);
                    (v, any, none, m.stats())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let want = vec![3.0, 30.0, 0.1 + 0.1 + 0.1];
    for (v, any, none, stats) in out {
        assert_eq!(v, want);
        assert!(any && !none);
        assert_eq!(
            stats,
            ReduceStats {
                calls: 3,
                bytes: 8 * 5
            }
        );
    }
}

#[test]
fn every_shard_gets_the_roots_values_bit_for_bit() {
    let members = ThreadGroup::new(3);
    let root = vec![-0.5, f64::MAX, 1e-300, 3.0];
    let out: Vec<Vec<f64>> = std::thread::scope(|s| {
        let handles: Vec<_> = members
            .iter()
            .map(|m| {
                let mine = if m.rank() == 0 {
                    root.clone()
                } else {
                    vec![7.0; m.rank()] // ignored, whatever its length
                };
                s.spawn(move || from_root(m, mine))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for v in out {
        assert_eq!(v, root);
    }
    assert_eq!(from_root(&SingleProcess, vec![1.0]), vec![1.0]);
}
