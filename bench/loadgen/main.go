// Command loadgen is the mesh bench's fixed-rate open-loop HTTP/1.1 load generator: the Go
// twin of bench/mesh_bench_load.py, with the same flags, schedule and JSON on stdout.
//
// Requests are scheduled at start + i/rate and their latency counts from that intended
// time (no coordinated omission). Targets share one schedule in alternating slices. Each
// target has a keep-alive pool that grows (up to --max-connections) when every connection is
// busy; a request that waited over --give-up for one is dropped and counted. lateness_ms is
// how late each request was written after its intended time.
//
// Why not net/http: its Transport queues, dials and writes on goroutines of its own, so the
// moment a request leaves is hidden and its pool does not grow the way the Python one does.
// Here the schedule runs on one locked OS thread that sleeps with nanosleep (1 ns timer
// slack; Go timers round up to whole milliseconds on Linux) and writes the request itself;
// one goroutine per connection reads responses with a small allocation-free parser.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var requestBytes = []byte("GET / HTTP/1.1\r\nhost: bench\r\nuser-agent: mesh-bench\r\n\r\n")

type request struct {
	intended   time.Time
	record     bool
	latenessMs float64
}

// rawRecord is one answered request, for --raw-out.
type rawRecord struct {
	intended              time.Time
	latencyMs, latenessMs float64
}

type targetStats struct {
	latenciesMs []float64
	latenessMs  []float64
	errors      int
	dropped     int
	non2xx      int
	opened      int
	raw         []rawRecord // only with --raw-out
	keepRaw     bool
}

type conn struct {
	pool       *pool
	netConn    net.Conn
	pending    request
	hasPending bool
}

// pool is one target's keep-alive connections; requests wait in order for a free one.
type pool struct {
	mu          sync.Mutex
	addr        string
	stats       *targetStats
	maxConns    int
	giveUp      time.Duration
	idle        []*conn
	all         map[*conn]struct{}
	waiting     []request
	waitingHead int
	opening     int
	outstanding int // submitted and neither answered, dropped nor failed
}

func newPool(port int, stats *targetStats, maxConns int, giveUp time.Duration) *pool {
	return &pool{
		addr:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		stats:    stats,
		maxConns: maxConns,
		giveUp:   giveUp,
		all:      map[*conn]struct{}{},
	}
}

func (p *pool) waitingLen() int { return len(p.waiting) - p.waitingHead }

func (p *pool) popWaiting() request {
	r := p.waiting[p.waitingHead]
	p.waitingHead++
	if p.waitingHead == len(p.waiting) {
		p.waiting, p.waitingHead = p.waiting[:0], 0
	}
	return r
}

func (p *pool) settle(count int) { p.outstanding -= count }

// warm opens count connections one after the other.
func (p *pool) warm(count int) {
	for range count {
		p.mu.Lock()
		p.opening++
		p.mu.Unlock()
		p.open()
	}
}

// open dials one connection; the caller has counted it in p.opening.
func (p *pool) open() {
	netConn, err := net.Dial("tcp", p.addr)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.opening--
	if err != nil {
		if p.waitingLen() > 0 {
			p.fail(p.popWaiting())
		}
		return
	}
	c := &conn{pool: p, netConn: netConn}
	p.stats.opened++
	p.all[c] = struct{}{}
	go c.readLoop()
	p.give(c)
}

func (p *pool) openMoreLocked() {
	if p.waitingLen() > 0 && len(p.all)+p.opening < p.maxConns {
		p.opening++
		go p.open()
	}
}

func (p *pool) submit(r request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.outstanding++
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.send(c, r)
		return
	}
	p.waiting = append(p.waiting, r)
	p.openMoreLocked()
}

// send writes the request (under p.mu: one small write that never blocks on loopback).
func (p *pool) send(c *conn, r request) {
	c.pending, c.hasPending = r, true
	if _, err := c.netConn.Write(requestBytes); err != nil {
		c.netConn.Close() // the read loop sees it and reports the connection lost
		return
	}
	if r.record {
		c.pending.latenessMs = msSince(r.intended)
		p.stats.latenessMs = append(p.stats.latenessMs, c.pending.latenessMs)
	}
}

// give hands a free connection the oldest waiting request still worth sending.
func (p *pool) give(c *conn) {
	now := time.Now()
	for p.waitingLen() > 0 {
		r := p.popWaiting()
		if now.Sub(r.intended) <= p.giveUp {
			p.send(c, r)
			return
		}
		p.settle(1)
		if r.record {
			p.stats.dropped++
		}
	}
	if _, ok := p.all[c]; ok {
		p.idle = append(p.idle, c)
	}
}

func (p *pool) answered(c *conn, status int, keepAlive bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !c.hasPending {
		return
	}
	r := c.pending
	c.hasPending = false
	p.settle(1)
	if r.record {
		latency := msSince(r.intended)
		p.stats.latenciesMs = append(p.stats.latenciesMs, latency)
		if p.stats.keepRaw {
			p.stats.raw = append(p.stats.raw, rawRecord{r.intended, latency, r.latenessMs})
		}
		if status < 200 || status >= 300 {
			p.stats.non2xx++
		}
	}
	if keepAlive {
		p.give(c)
	}
}

func (p *pool) lost(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.all, c)
	for i, idle := range p.idle {
		if idle == c {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			break
		}
	}
	if c.hasPending {
		c.hasPending = false
		p.fail(c.pending)
	}
	p.openMoreLocked()
}

func (p *pool) fail(r request) {
	p.settle(1)
	if r.record {
		p.stats.errors++
	}
}

func (p *pool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.all {
		c.netConn.Close()
	}
}

func (c *conn) readLoop() {
	reader := bufio.NewReaderSize(c.netConn, 16<<10)
	for {
		status, keepAlive, err := readResponse(reader)
		if err != nil {
			break
		}
		c.pool.answered(c, status, keepAlive)
		if !keepAlive {
			break
		}
	}
	c.netConn.Close()
	c.pool.lost(c)
}

var errMalformed = errors.New("malformed response")

// readResponse reads one HTTP/1.1 response to its end and returns its status and whether
// the connection stays open after it (1xx interim responses are skipped).
func readResponse(reader *bufio.Reader) (status int, keepAlive bool, err error) {
	for {
		line, err := reader.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
			return 0, false, errMalformed
		}
		keepAlive = line[7] == '1'
		status, err = strconv.Atoi(string(line[9:12]))
		if err != nil {
			return 0, false, errMalformed
		}
		length, chunked := int64(-1), false
		for {
			line, err = reader.ReadSlice('\n')
			if err != nil {
				return 0, false, err
			}
			line = bytes.TrimRight(line, "\r\n")
			if len(line) == 0 {
				break
			}
			name, value, ok := bytes.Cut(line, []byte(":"))
			if !ok {
				return 0, false, errMalformed
			}
			value = bytes.TrimSpace(value)
			switch {
			case asciiEqualFold(name, "content-length"):
				length, err = strconv.ParseInt(string(value), 10, 64)
				if err != nil || length < 0 {
					return 0, false, errMalformed
				}
			case asciiEqualFold(name, "transfer-encoding"):
				chunked = bytes.Contains(bytes.ToLower(value), []byte("chunked"))
			case asciiEqualFold(name, "connection"):
				lower := bytes.ToLower(value)
				if bytes.Contains(lower, []byte("close")) {
					keepAlive = false
				} else if bytes.Contains(lower, []byte("keep-alive")) {
					keepAlive = true
				}
			}
		}
		if status >= 100 && status < 200 {
			continue
		}
		switch {
		case status == 204 || status == 304:
		case chunked:
			err = discardChunked(reader)
		case length >= 0:
			_, err = reader.Discard(int(length))
		default: // the body runs to the end of the connection
			_, err = io.Copy(io.Discard, reader)
			return status, false, err
		}
		return status, keepAlive, err
	}
}

func discardChunked(reader *bufio.Reader) error {
	for {
		line, err := reader.ReadSlice('\n')
		if err != nil {
			return err
		}
		sizeText, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		size, err := strconv.ParseInt(string(bytes.TrimSpace(sizeText)), 16, 64)
		if err != nil || size < 0 {
			return errMalformed
		}
		if size == 0 {
			for { // trailers up to the empty line
				line, err = reader.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if _, err = reader.Discard(int(size) + 2); err != nil {
			return err
		}
	}
}

func asciiEqualFold(name []byte, lower string) bool {
	return len(name) == len(lower) && strings.EqualFold(string(name), lower)
}

func msSince(t time.Time) float64 { return float64(time.Since(t)) / 1e6 }

// sleepUntil sleeps on this (locked) thread with nanosleep, then spins the last spin.
func sleepUntil(deadline time.Time, spin time.Duration) {
	for {
		left := time.Until(deadline) - spin
		if left <= 0 {
			break
		}
		ts := syscall.NsecToTimespec(int64(left))
		_ = syscall.Nanosleep(&ts, nil) // EINTR (Go's preemption signal): go round again
	}
	for time.Now().Before(deadline) {
	}
}

type options struct {
	rate, durationS, sliceS, warmupS float64
	maxConns                         int
	giveUp, spin                     time.Duration
	keepRaw                          bool
}

func runFixedRate(names []string, ports map[string]int, opt options) (map[string]*targetStats, time.Time) {
	stats := map[string]*targetStats{}
	pools := map[string]*pool{}
	var measureStart time.Time
	expected := int(opt.durationS*opt.rate) + 16
	for _, name := range names {
		stats[name] = &targetStats{
			latenciesMs: make([]float64, 0, expected),
			latenessMs:  make([]float64, 0, expected),
			keepRaw:     opt.keepRaw,
		}
		if opt.keepRaw {
			stats[name].raw = make([]rawRecord, 0, expected)
		}
		pools[name] = newPool(ports[name], stats[name], opt.maxConns, opt.giveUp)
	}
	for _, name := range names {
		pools[name].warm(8)
	}
	for _, phase := range []struct {
		seconds float64
		record  bool
	}{{opt.warmupS, false}, {opt.durationS, true}} {
		if phase.record {
			runtime.GC()
			debug.SetGCPercent(-1) // the parser does not allocate; nothing to collect
		}
		count := int(phase.seconds * float64(len(names)) * opt.rate)
		start := time.Now().Add(10 * time.Millisecond)
		measureStart = start
		at := func(index int) time.Time {
			return start.Add(time.Duration(float64(index) / opt.rate * 1e9))
		}
		for index := 0; index < count; {
			sleepUntil(at(index), opt.spin)
			for ; index < count; index++ {
				intended := at(index)
				if intended.After(time.Now()) {
					break
				}
				slice := int(intended.Sub(start).Seconds() / opt.sliceS)
				pools[names[slice%len(names)]].submit(request{intended: intended, record: phase.record})
			}
		}
		deadline := time.Now().Add(15 * time.Second)
		for !settled(pools) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		for _, p := range pools { // no answer within 15 s: failed
			p.mu.Lock()
			if phase.record && p.outstanding > 0 {
				p.stats.errors += p.outstanding
			}
			p.outstanding = 0
			p.mu.Unlock()
		}
	}
	debug.SetGCPercent(100)
	for _, p := range pools {
		p.closeAll()
	}
	return stats, measureStart
}

// writeRaw writes one CSV line per answered measured request, in order of intended time.
func writeRaw(path string, names []string, stats map[string]*targetStats, start time.Time) error {
	file, err := os.Create(path)
	if err != nil {
		return err
	}
	out := bufio.NewWriter(file)
	fmt.Fprintln(out, "target,intended_ms,latency_ms,lateness_ms")
	for _, name := range names {
		for _, r := range stats[name].raw {
			fmt.Fprintf(out, "%s,%.3f,%.4f,%.4f\n", name, float64(r.intended.Sub(start))/1e6,
				r.latencyMs, r.latenessMs)
		}
	}
	if err = out.Flush(); err != nil {
		file.Close()
		return err
	}
	return file.Close()
}

func settled(pools map[string]*pool) bool {
	for _, p := range pools {
		p.mu.Lock()
		outstanding := p.outstanding
		p.mu.Unlock()
		if outstanding > 0 {
			return false
		}
	}
	return true
}

// percentiles are nearest-rank, as mesh_bench_load.percentiles; nil when empty.
type percentiles struct {
	P50  *float64 `json:"p50"`
	P90  *float64 `json:"p90"`
	P99  *float64 `json:"p99"`
	P999 *float64 `json:"p999"`
	Max  *float64 `json:"max"`
}

func percentilesOf(values []float64) percentiles {
	ordered := append([]float64(nil), values...)
	sort.Float64s(ordered)
	if len(ordered) == 0 {
		return percentiles{}
	}
	rank := func(q float64) *float64 {
		index := int(q*float64(len(ordered))+0.5) - 1
		index = min(len(ordered)-1, max(0, index))
		return &ordered[index]
	}
	return percentiles{rank(0.50), rank(0.90), rank(0.99), rank(0.999), &ordered[len(ordered)-1]}
}

type summary struct {
	percentiles
	Requests          int         `json:"requests"`
	Errors            int         `json:"errors"`
	Dropped           int         `json:"dropped"`
	Non2xx            int         `json:"non_2xx"`
	ConnectionsOpened int         `json:"connections_opened"`
	LatenessMs        percentiles `json:"lateness_ms"`
}

type targetFlag struct {
	names []string
	ports map[string]int
}

func (t *targetFlag) String() string { return strings.Join(t.names, ",") }

func (t *targetFlag) Set(value string) error {
	name, portText, _ := strings.Cut(value, "=")
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("want NAME=PORT, got %q", value)
	}
	if _, seen := t.ports[name]; !seen {
		t.names = append(t.names, name)
	}
	t.ports[name] = port
	return nil
}

func main() {
	runtime.LockOSThread() // the schedule's thread: its timer slack is set below
	targets := &targetFlag{ports: map[string]int{}}
	flag.Var(targets, "target", "NAME=PORT (repeat for more targets)")
	rate := flag.Float64("rate", 1000, "requests per second")
	duration := flag.Float64("duration", 10, "seconds per target")
	sliceS := flag.Float64("slice", 1, "seconds per slice of one target")
	warmup := flag.Float64("warmup", 1, "seconds per target sent but not recorded")
	maxConns := flag.Int("max-connections", 64, "connections per target at most")
	giveUp := flag.Float64("give-up", 2, "drop a request that waited this many seconds")
	spinUs := flag.Float64("spin-us", 0, "busy-wait this many µs before each send")
	rawOut := flag.String("raw-out", "", "CSV of every measured request (intended time, latency, lateness)")
	flag.Parse()
	if len(targets.names) == 0 {
		fmt.Fprintln(os.Stderr, "loadgen: at least one --target NAME=PORT")
		os.Exit(2)
	}
	const prSetTimerslack = 29
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerslack, 1, 0)
	stats, measureStart := runFixedRate(targets.names, targets.ports, options{
		rate: *rate, durationS: *duration, sliceS: *sliceS, warmupS: *warmup,
		maxConns: *maxConns,
		giveUp:   time.Duration(*giveUp * 1e9),
		spin:     time.Duration(*spinUs * 1e3),
		keepRaw:  *rawOut != "",
	})
	if *rawOut != "" {
		if err := writeRaw(*rawOut, targets.names, stats, measureStart); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
	}
	// One JSON object, targets in the order given (encoding/json would sort map keys).
	out := bufio.NewWriter(os.Stdout)
	out.WriteString("{")
	for i, name := range targets.names {
		s := stats[name]
		row, err := json.Marshal(summary{
			percentiles:       percentilesOf(s.latenciesMs),
			Requests:          len(s.latenciesMs),
			Errors:            s.errors,
			Dropped:           s.dropped,
			Non2xx:            s.non2xx,
			ConnectionsOpened: s.opened,
			LatenessMs:        percentilesOf(s.latenessMs),
		})
		if err != nil {
			panic(err)
		}
		key, _ := json.Marshal(name)
		if i > 0 {
			out.WriteString(", ")
		}
		out.Write(key)
		out.WriteString(": ")
		out.Write(row)
	}
	out.WriteString("}")
	out.Flush()
}
