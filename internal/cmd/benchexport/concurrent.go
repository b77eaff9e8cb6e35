package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// loadResult sums up the concurrent run.
type loadResult struct {
	clients, accounts int
	requests, records int
	ok, refused, fail int
	elapsed           time.Duration
	p50, p99, max     time.Duration
	serverCores       float64 // CPU time of the server / wall time
	machineBusy       float64 // share of all cores busy, from /proc/stat
	firstError        string
}

// concurrent runs clients that export ordinary accounts from the example
// server at the same time, each client one account after another, until
// the duration is over.
func (r *runner) concurrent(ds dataset, clients int, duration time.Duration) (loadResult, error) {
	res := loadResult{clients: clients, accounts: ds.shape.others}
	p, err := startProcess(r.ctx, r.dir, append([]string{r.server}, ds.dbArgs()...), true)
	if err != nil {
		return res, err
	}
	defer p.stop()
	cookies := make([]*http.Cookie, ds.shape.others)
	for i := range cookies {
		if cookies[i], err = login(r.ctx, p.addr, otherUserID(i)); err != nil {
			return res, err
		}
	}

	cpu0, err := p.cpuTime()
	if err != nil {
		return res, err
	}
	busy0, total0 := machineTimes()
	start := time.Now()
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := c; time.Since(start) < duration && r.ctx.Err() == nil; i += clients {
				t0 := time.Now()
				status, _, err := fetch(r.ctx, p.addr, cookies[i%len(cookies)], io.Discard)
				d := time.Since(t0)
				mu.Lock()
				res.requests++
				switch {
				case err == nil && status == http.StatusOK:
					res.ok++
					res.records += 3 * ds.shape.otherRows
					lat = append(lat, d)
				case err == nil && status == http.StatusTooManyRequests:
					res.refused++
				default:
					res.fail++
					if res.firstError == "" {
						res.firstError = fmt.Sprintf("status %d, %v", status, err)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	cpu1, err := p.cpuTime()
	if err != nil {
		return res, err
	}
	busy1, total1 := machineTimes()
	res.serverCores = float64(cpu1-cpu0) / float64(res.elapsed)
	if total1 > total0 {
		res.machineBusy = float64(busy1-busy0) / float64(total1-total0)
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		res.p50 = lat[len(lat)/2]
		res.p99 = lat[len(lat)*99/100]
		res.max = lat[len(lat)-1]
	}
	return res, r.ctx.Err()
}

// machineTimes reads the busy and total CPU time of all cores, in ticks.
func machineTimes() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal guest...
	if len(f) < 9 {
		return 0, 0
	}
	for i, s := range f[1:9] { // guest time is already in user
		v, _ := strconv.ParseInt(s, 10, 64)
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total
}
