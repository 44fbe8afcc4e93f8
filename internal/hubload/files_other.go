//go:build !unix

package hubload

// RaiseFileLimit does nothing: there is no open-file limit of this kind to
// raise outside Unix.
func RaiseFileLimit() {}
