//! tokio_peer: the Tokio side of asyncc's task benchmarks (bench/README.md).
//! Each mode is the same program as its asyncc counterpart in bench/, with the
//! same counts, repetitions, random sleeps and output format:
//!
//!   tokio_peer spawn_join [TASKS]      spawn_join_tokio NS ns/task
//!   tokio_peer yield_chain_mt [ROUNDS] yield_chain_mt_tokio NS ns/round
//!   tokio_peer timers [TASKS]          timers_100k_wall_tokio MS ms
//!                                      timers_100k_rss_tokio KIB KiB
//!   tokio_peer timers_late [TASKS]     timers_late_max_tokio MS ms
//!                                      timers_late_p999_tokio MS ms
//!
//! Every mode runs on the default multi-thread runtime (one worker per core),
//! entered with block_on from main, which is what #[tokio::main] expands to.
//! Each prints a line `rep NAME VALUE UNIT` per timed repetition (REPS of
//! them; the timer mode runs once, since the peak RSS is the process's), then
//! `bench NAME VALUE UNIT` with the best (minimum).
//!
//! Build (bench/run.sh does this, offline, from Debian's crates):
//! cargo build --release

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const REPS: usize = 5;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_time()
        .build()
        .expect("cannot build the Tokio runtime")
}

/// Prints one `rep` line per value and a `bench` line with the smallest.
fn report(name: &str, unit: &str, decimals: usize, values: &[f64]) {
    for v in values {
        println!("rep {} {:.*} {}", name, decimals, v, unit);
    }
    let best = values.iter().cloned().fold(f64::INFINITY, f64::min);
    println!("bench {} {:.*} {}", name, decimals, best, unit);
}

/// Spawns `tasks` trivial tasks, then awaits every handle; ns per task.
async fn spawn_join(tasks: u64) -> f64 {
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(tasks as usize);
    for i in 0..tasks {
        handles.push(tokio::spawn(async move { i }));
    }
    let mut sum = 0u64;
    for h in handles {
        sum += h.await.expect("a trivial task failed");
    }
    let dt = t0.elapsed();
    if sum != tasks * (tasks - 1) / 2 {
        println!("# warning: spawn_join_tokio: sum {}, expected {}", sum, tasks * (tasks - 1) / 2);
    }
    dt.as_nanos() as f64 / tasks as f64
}

// The depth-10 chain of bench/yield_chain.ac: f1 awaits f2 ... f10 awaits
// yield_now().
async fn f10() -> u64 {
    tokio::task::yield_now().await;
    1
}
async fn f9() -> u64 { f10().await }
async fn f8() -> u64 { f9().await }
async fn f7() -> u64 { f8().await }
async fn f6() -> u64 { f7().await }
async fn f5() -> u64 { f6().await }
async fn f4() -> u64 { f5().await }
async fn f3() -> u64 { f4().await }
async fn f2() -> u64 { f3().await }
async fn f1() -> u64 { f2().await }

/// One timed loop of `rounds` rounds of the chain; ns per round.
async fn chain_rounds(rounds: u64) -> f64 {
    let t0 = Instant::now();
    let mut sum = 0u64;
    for _ in 0..rounds {
        sum += f1().await;
    }
    let dt = t0.elapsed();
    if sum != rounds {
        println!("# warning: yield_chain_mt_tokio: sum {}, expected {}", sum, rounds);
    }
    dt.as_nanos() as f64 / rounds as f64
}

/// The sleeps of the timer benchmark: 0..=100 ms from a fixed-seed LCG, the
/// same sequence as bench/timers_100k.ac.
fn sleep_ms(state: &mut u64) -> u64 {
    *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (*state >> 33) % 101
}

/// Spawns `tasks` tasks that each sleep a random 0-100 ms and awaits them all;
/// wall ms.
async fn timers(tasks: u64) -> f64 {
    let mut seed = 42u64;
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(tasks as usize);
    for _ in 0..tasks {
        let ms = sleep_ms(&mut seed);
        handles.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            1u64
        }));
    }
    let mut done = 0u64;
    for h in handles {
        done += h.await.expect("a sleeping task failed");
    }
    let dt = t0.elapsed();
    if done != tasks {
        println!("# warning: timers_100k_tokio: {} tasks finished, expected {}", done, tasks);
    }
    dt.as_secs_f64() * 1000.0
}

/// Peak resident set size of this process (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("VmHWM:") {
            return rest.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
        }
    }
    0
}

/// The sleeps of bench/timers_late.ac: 3000..=6000 ms from the same LCG.
fn late_sleep_ms(state: &mut u64) -> u64 {
    *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    3000 + (*state >> 33) % 3001
}

/// Wakes by lateness in 10 us steps (up to 1 s; later ones in the last), and
/// the worst, in ns.
const LATE_BUCKET_NS: u64 = 10_000;
const LATE_BUCKETS: usize = 100_000;
const ZERO: AtomicU32 = AtomicU32::new(0);
static LATE_HIST: [AtomicU32; LATE_BUCKETS] = [ZERO; LATE_BUCKETS];
static LATE_MAX_NS: AtomicU64 = AtomicU64::new(0);

/// Spawns `tasks` tasks that each sleep a random 3000-6000 ms and note how
/// late they woke, awaits them all; the worst and the 99.9th percentile, ms.
async fn timers_late(tasks: u64) -> (f64, f64) {
    let mut seed = 42u64;
    let mut handles = Vec::with_capacity(tasks as usize);
    for _ in 0..tasks {
        let ms = late_sleep_ms(&mut seed);
        handles.push(tokio::spawn(async move {
            let start = Instant::now();
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let late = start.elapsed().saturating_sub(Duration::from_millis(ms)).as_nanos() as u64;
            let b = ((late / LATE_BUCKET_NS) as usize).min(LATE_BUCKETS - 1);
            LATE_HIST[b].fetch_add(1, Ordering::Relaxed);
            LATE_MAX_NS.fetch_max(late, Ordering::Relaxed);
            1u64
        }));
    }
    let mut done = 0u64;
    for h in handles {
        done += h.await.expect("a sleeping task failed");
    }
    if done != tasks {
        println!("# warning: timers_late_tokio: {} tasks finished, expected {}", done, tasks);
    }
    let rank = tasks - tasks / 1000;
    let mut seen = 0u64;
    let mut b = 0;
    while b < LATE_BUCKETS - 1 {
        seen += LATE_HIST[b].load(Ordering::Relaxed) as u64;
        if seen >= rank {
            break;
        }
        b += 1;
    }
    let p999 = ((b as u64 + 1) * LATE_BUCKET_NS) as f64 / 1e6;
    (LATE_MAX_NS.load(Ordering::Relaxed) as f64 / 1e6, p999)
}

/// bench/sleep_turn.ac: REPS timed loops of `turns` sleeps of 1 ms; ms per
/// turn of each.
async fn sleep_turns(turns: u64) -> Vec<f64> {
    let mut ms = Vec::with_capacity(REPS);
    for _ in 0..REPS {
        let t0 = Instant::now();
        for _ in 0..turns {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        ms.push(t0.elapsed().as_secs_f64() * 1e3 / turns as f64);
    }
    ms
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("");
    let count = |default: u64| -> u64 {
        args.get(2).and_then(|s| s.parse().ok()).filter(|&n| n > 0).unwrap_or(default)
    };
    let rt = runtime();
    match mode {
        "spawn_join" => {
            let tasks = count(1_000_000);
            let ns: Vec<f64> = (0..REPS).map(|_| rt.block_on(spawn_join(tasks))).collect();
            report("spawn_join_tokio", "ns/task", 1, &ns);
        }
        "yield_chain_mt" => {
            let rounds = count(1_000_000);
            // The timed loops run in a spawned task, on a worker thread.
            let ns = rt.block_on(async move {
                tokio::spawn(async move {
                    let mut ns = Vec::with_capacity(REPS);
                    for _ in 0..REPS {
                        ns.push(chain_rounds(rounds).await);
                    }
                    ns
                })
                .await
                .expect("the yield chain task failed")
            });
            report("yield_chain_mt_tokio", "ns/round", 2, &ns);
        }
        "timers" => {
            // One run per process: the peak RSS is the process's.
            let ms = rt.block_on(timers(count(100_000)));
            report("timers_100k_wall_tokio", "ms", 1, &[ms]);
            report("timers_100k_rss_tokio", "KiB", 0, &[peak_rss_kib() as f64]);
        }
        "timers_late" => {
            // One run per process, as bench/timers_late.ac.
            let (max, p999) = rt.block_on(timers_late(count(1_000_000)));
            report("timers_late_max_tokio", "ms", 2, &[max]);
            report("timers_late_p999_tokio", "ms", 2, &[p999]);
        }
        "sleep_turn" => {
            // In a spawned task, on a worker thread, as bench/sleep_turn.ac.
            let turns = count(200);
            let task = rt.spawn(sleep_turns(turns));
            let ms = rt.block_on(task).expect("the sleeping task failed");
            report("sleep_turn_tokio", "ms", 3, &ms);
        }
        _ => {
            eprintln!(
                "usage: tokio_peer spawn_join|yield_chain_mt|timers|timers_late|sleep_turn [COUNT]"
            );
            std::process::exit(2);
        }
    }
}
