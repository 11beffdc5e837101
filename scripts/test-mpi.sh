#!/usr/bin/env bash
# The data-parallel tests over MPI (cargo feature `mpi`): installs Open MPI
# and libclang (for the mpi crate's bindings) from Debian's packages where
# they are missing, runs the agreement test under `mpirun -np 2` and
# `-np 4`, then the command line's tests (which start mpirun themselves).
#
#   scripts/test-mpi.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v mpirun >/dev/null || need+=(openmpi-bin)
[ -e /usr/include/x86_64-linux-gnu/mpi/mpi.h ] || [ -e /usr/lib/x86_64-linux-gnu/openmpi/include/mpi.h ] || need+=(libopenmpi-dev)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || need+=(libclang-dev)
if [ ${#need[@]} -gt 0 ]; then
    echo "== MPI tests: installing ${need[*]} (Debian packages)"
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: the MPI tests need ${need[*]}; install them (sudo apt-get install ${need[*]}) or run as root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${need[@]}" >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; }
fi
# Open MPI refuses root unless told; CI machines run as root. Ranks waiting
# in a sum yield their core: there are more ranks than the CI's 2 cores.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1

echo "== MPI tests: build"
# cargo names the test binary on stderr. (Not `tee /dev/stderr`: where
# stderr is a log file, that reopens it at offset 0 and overwrites the log.)
build_log=$(mktemp)
cargo test --locked --features mpi --test mpi --test mpi_cli --no-run 2>"$build_log" || { cat "$build_log" >&2; exit 1; }
cat "$build_log" >&2
exe=$(sed -n 's/.*Executable tests\/mpi\.rs (\(.*\))/\1/p' "$build_log")
rm -f "$build_log"
[ -n "$exe" ] || { echo "error: no test binary for tests/mpi.rs" >&2; exit 1; }

for ranks in 2 4; do
    echo "== MPI tests: agreement with the one-process solve, $ranks ranks"
    timeout 600 mpirun --oversubscribe -np "$ranks" "$exe"
done

echo "== MPI tests: the command line under mpirun (one test at a time: each starts up to 4 ranks)"
cargo test --locked --features mpi --test mpi_cli -- --test-threads=1
