// Command epollfront is a reference row of the Connect benchmark
// (scripts/bench/connect.sh), not a product: the least a reverse proxy
// written in Go can cost on the benchmark's machine. It is an event loop
// per CPU thread (epoll, as nginx's workers), reading and writing sockets
// with plain system calls, no goroutine per connection, and nothing else:
// no access checks, no request log, no metrics, no timeouts, no request
// bodies, no chunked or close-delimited responses (a 502 and the
// connection ends), no streaming. Requests go round robin to the
// backends over kept-alive connections.
//
// Why it exists: the benchmark's targets put Atrium's proxy beside nginx
// and beside no proxy at all. Where both Atrium and nginx fall short, this
// row shows whether any proxy could do better on the same machine, so that
// a shortfall can be told apart from one the machine sets.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"strings"
)

// Config says where the proxy listens and where it sends requests.
type Config struct {
	Listen   string   // IPv4 host:port; port 0 picks one
	Backends []string // IPv4 host:port each
	Strip    string   // a path prefix ("/content/x/") replaced by "/", or ""
	Loops    int      // event loops (threads)
}

// Proxy is a running epollfront.
type Proxy struct {
	addr string
}

// Addr is the address the proxy listens on.
func (p *Proxy) Addr() string { return p.addr }

func main() {
	listen := flag.String("listen", "127.0.0.1:8082", "address to listen on (IPv4 host:port)")
	backends := flag.String("backend", "http://127.0.0.1:8080", "the backends' URLs, comma-separated (http, IPv4 host:port)")
	prefix := flag.String("strip", "", "a path prefix replaced by / before the request goes to a backend (as nginx's proxy_pass with a path)")
	loops := flag.Int("loops", runtime.NumCPU(), "event loops, each on its own thread (nginx: worker_processes)")
	flag.Parse()
	cfg := Config{Listen: *listen, Strip: *prefix, Loops: *loops}
	for _, b := range strings.Split(*backends, ",") {
		u, err := url.Parse(b)
		if err != nil || u.Scheme != "http" || u.Host == "" {
			fmt.Fprintf(os.Stderr, "epollfront: backend %q: want http://HOST:PORT\n", b)
			os.Exit(2)
		}
		cfg.Backends = append(cfg.Backends, u.Host)
	}
	p, err := New(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "epollfront: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "epollfront: %d loops on %s\n", cfg.Loops, p.Addr())
	select {}
}
