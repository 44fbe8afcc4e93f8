//go:build !unix && !windows

package hub_test

import "errors"

// setReceiveBuffer cannot set a receive buffer here.
func setReceiveBuffer(uintptr, int) error {
	return errors.New("no SO_RCVBUF on this system")
}
