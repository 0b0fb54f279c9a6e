package main

import (
	"encoding/binary"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// gsoSupported: UDP GSO (UDP_SEGMENT) is Linux only.
const gsoSupported = true

// gsoControl returns the control message that asks the kernel to cut a
// datagram into segments of size bytes (UDP_SEGMENT, Linux 4.18).
func gsoControl(size int) []byte {
	b := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[unix.CmsgLen(0):], uint16(size))
	return b
}

// sleep waits for d. Go's timers wake up about a millisecond late on this
// kind of VM, which would make the sender's batches bursts of a
// millisecond's worth; nanosleep(2) is late by about 0.1 ms. It blocks the
// thread, so the receiver needs a P of its own (see runMain).
func sleep(d time.Duration) {
	if d >= 2*time.Millisecond {
		time.Sleep(d)
		return
	}
	ts := unix.NsecToTimespec(int64(d))
	_ = unix.Nanosleep(&ts, nil)
}
