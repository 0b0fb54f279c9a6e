//go:build !linux

package main

import "errors"

func setListenerRcvbuf(port, size int) (int, error) {
	return 0, errors.New("-rcvbuf needs Linux")
}
