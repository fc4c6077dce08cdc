// go_peer: the Go side of asyncc's task benchmarks (bench/README.md), for
// the figures issue 3 quotes for Go 1.19. Each mode is the same program as
// its asyncc counterpart in bench/, with the same counts, repetitions,
// random sleeps and output format:
//
//	go_peer spawn_join [TASKS]   spawn_join_go NS ns/task
//	go_peer timers [TASKS]       timers_100k_wall_go MS ms
//	                             timers_100k_rss_go KIB KiB
//
// A goroutine has no join handle: a task here is a goroutine that stores its
// result in its own element of a slice and marks a sync.WaitGroup done, and
// "awaiting every handle" is waiting on the group and then reading the
// results, which is how Go code collects the results of many goroutines.
// The scheduler is Go's default: GOMAXPROCS = the number of cores.
//
// Each mode prints a line `rep NAME VALUE UNIT` per timed repetition, then
// `bench NAME VALUE UNIT` with the best (minimum).
//
// Build (bench/run.sh does this, with Debian's golang-go, no network):
// go build -o go_peer main.go
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

const reps = 5

// report prints one `rep` line per value and a `bench` line with the smallest.
func report(name, unit string, decimals int, values []float64) {
	best := values[0]
	for _, v := range values {
		fmt.Printf("rep %s %.*f %s\n", name, decimals, v, unit)
		if v < best {
			best = v
		}
	}
	fmt.Printf("bench %s %.*f %s\n", name, decimals, best, unit)
}

// spawnJoin starts `tasks` trivial goroutines, then waits for all of them and
// reads every result; ns per task.
func spawnJoin(tasks int) float64 {
	t0 := time.Now()
	results := make([]uint64, tasks)
	var wg sync.WaitGroup
	wg.Add(tasks)
	for i := 0; i < tasks; i++ {
		go func(i int) {
			results[i] = uint64(i)
			wg.Done()
		}(i)
	}
	wg.Wait()
	var sum uint64
	for _, r := range results {
		sum += r
	}
	dt := time.Since(t0)
	if want := uint64(tasks) * uint64(tasks-1) / 2; sum != want {
		fmt.Printf("# warning: spawn_join_go: sum %d, expected %d\n", sum, want)
	}
	return float64(dt.Nanoseconds()) / float64(tasks)
}

// sleepMs is the sleep of the timer benchmark: 0..=100 ms from a fixed-seed
// LCG, the same sequence as bench/timers_100k.ac.
func sleepMs(state *uint64) uint64 {
	*state = *state*6364136223846793005 + 1442695040888963407
	return (*state >> 33) % 101
}

// timers starts `tasks` goroutines that each sleep a random 0-100 ms, then
// waits for them all; wall ms.
func timers(tasks int) float64 {
	seed := uint64(42)
	t0 := time.Now()
	done := make([]uint64, tasks)
	var wg sync.WaitGroup
	wg.Add(tasks)
	for i := 0; i < tasks; i++ {
		ms := sleepMs(&seed)
		go func(i int, ms uint64) {
			time.Sleep(time.Duration(ms) * time.Millisecond)
			done[i] = 1
			wg.Done()
		}(i, ms)
	}
	wg.Wait()
	var n uint64
	for _, d := range done {
		n += d
	}
	dt := time.Since(t0)
	if n != uint64(tasks) {
		fmt.Printf("# warning: timers_100k_go: %d tasks finished, expected %d\n", n, tasks)
	}
	return float64(dt.Nanoseconds()) / 1e6
}

// peakRssKiB is the peak resident set size of this process (VmHWM), in KiB.
func peakRssKiB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "VmHWM:") { // (strings.CutPrefix is Go 1.20)
			field := strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:")), "kB")
			kib, _ := strconv.ParseInt(strings.TrimSpace(field), 10, 64)
			return kib
		}
	}
	return 0
}

func main() {
	mode := ""
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	count := func(def int) int {
		if len(os.Args) > 2 {
			if n, err := strconv.Atoi(os.Args[2]); err == nil && n > 0 {
				return n
			}
		}
		return def
	}
	switch mode {
	case "spawn_join":
		tasks := count(1000000)
		ns := make([]float64, 0, reps)
		for r := 0; r < reps; r++ {
			ns = append(ns, spawnJoin(tasks))
		}
		report("spawn_join_go", "ns/task", 1, ns)
	case "timers":
		ms := timers(count(100000))
		rss := peakRssKiB()
		fmt.Printf("rep timers_100k_wall_go %.1f ms\n", ms)
		fmt.Printf("rep timers_100k_rss_go %d KiB\n", rss)
		fmt.Printf("bench timers_100k_wall_go %.1f ms\n", ms)
		fmt.Printf("bench timers_100k_rss_go %d KiB\n", rss)
	default:
		fmt.Fprintln(os.Stderr, "usage: go_peer spawn_join|timers [COUNT]")
		os.Exit(2)
	}
}
