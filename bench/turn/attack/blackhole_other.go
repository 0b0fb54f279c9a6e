//go:build !linux

package main

import (
	"errors"
	"net/netip"
)

type blackHole struct{ addr netip.AddrPort }

func newBlackHole() (*blackHole, error) {
	return nil, errors.New("the Connect flood's black-hole peers need Linux")
}

func (h *blackHole) close() {}
