//go:build !linux

package main

import "errors"

// New fails: the event loop is Linux's epoll.
func New(Config) (*Proxy, error) {
	return nil, errors.New("epollfront runs on Linux only (epoll)")
}
