// bench_main.cc - the one C++ file: registers the C benchmark bodies of
// bench_bodies.h with Google Benchmark. Run: build/bench/trestle_bench
// (see bench/run.sh, which also writes bench/RESULTS.md).
#include <benchmark/benchmark.h>

#include "bench_bodies.h"

namespace {

template <void *(*Setup)(size_t), uint64_t (*Run)(void *), void (*Teardown)(void *)>
void Sized(benchmark::State &state, bool items)
{
    void *ctx = Setup(static_cast<size_t>(state.range(0)));
    if (!ctx) {
        state.SkipWithError("setup failed");
        return;
    }
    uint64_t total = 0;
    for (auto _ : state)
        total += Run(ctx);
    if (items)
        state.SetItemsProcessed(static_cast<int64_t>(total));
    else
        state.SetBytesProcessed(static_cast<int64_t>(total));
    Teardown(ctx);
}

void BM_crc32c(benchmark::State &s) { Sized<tb_crc_setup, tb_crc_run, tb_crc_teardown>(s, false); }
void BM_crc32c_combine(benchmark::State &s)
{
    Sized<tb_crc_setup, tb_crc_combine_run, tb_crc_teardown>(s, false);
}
void BM_index_open(benchmark::State &s)
{
    Sized<tb_table_setup, tb_table_open_run, tb_table_teardown>(s, true);
}
void BM_plan(benchmark::State &s) { Sized<tb_plan_setup, tb_plan_run, tb_plan_teardown>(s, true); }

void BM_reader(benchmark::State &state)
{
    void *ctx = tb_reader_setup(static_cast<int>(state.range(0)),
                                static_cast<size_t>(state.range(1)) << 10,
                                static_cast<unsigned>(state.range(2)));
    if (!ctx) {
        state.SkipWithError("reader unavailable here");
        return;
    }
    uint64_t total = 0;
    for (auto _ : state)
        total += tb_reader_run(ctx);
    state.SetBytesProcessed(static_cast<int64_t>(total));
    tb_reader_teardown(ctx);
}

}  // namespace

BENCHMARK(BM_crc32c)->RangeMultiplier(16)->Range(4 << 10, 64 << 20);
BENCHMARK(BM_crc32c_combine)->Arg(64 << 20);
BENCHMARK(BM_index_open)->Arg(10)->Arg(1000)->Arg(100000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_plan)->Arg(10000)->Unit(benchmark::kMillisecond);
// reader (1 io_uring, 2 pread) x chunk KiB x queue depth. Wall time, not
// the main thread's CPU time: the work happens in reader and worker threads.
BENCHMARK(BM_reader)
    ->ArgsProduct({{1, 2}, {1024, 8192}, {4, 32}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

BENCHMARK_MAIN();
