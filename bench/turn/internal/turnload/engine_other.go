//go:build !linux

package turnload

import (
	"errors"
	"net/netip"
	"time"
)

// Engine needs epoll: on this system NewEngine fails.
type Engine struct {
	Stray, SendErrors int
}

// NewEngine reports that the engine needs Linux.
func NewEngine(cfg EngineConfig, n int) (*Engine, error) {
	return nil, errors.New("the allocation engine needs Linux (epoll)")
}

func (e *Engine) Reopen(ip netip.Addr) error                                  { return errors.ErrUnsupported }
func (e *Engine) Close()                                                      {}
func (e *Engine) Len() int                                                    { return 0 }
func (e *Engine) Allocated(dst []int) []int                                   { return dst }
func (e *Engine) Relayed(i int) (netip.AddrPort, bool)                        { return netip.AddrPort{}, false }
func (e *Engine) Run(ids []int, op Op, window int, until time.Time) RunResult { return RunResult{} }
