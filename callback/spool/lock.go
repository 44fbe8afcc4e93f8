package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrInUse is returned by Open when another process has the directory
// open as its spool.
var ErrInUse = errors.New("spool directory is in use by another process")

// lockDir takes an exclusive lock on dir for as long as the returned file
// is open. Two hubs appending to one spool would each publish, and cut
// off, what the other wrote: the second is refused instead. The system
// drops the lock when the process dies, SIGKILL included, so a crash
// leaves no stale lock behind. (Where the system has no such lock, see
// lockFile, nothing stops a second hub.)
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("spool %s: %w (each hub needs a -spool-dir of its own)", dir, ErrInUse)
		}
		return nil, fmt.Errorf("spool: lock %s: %w", dir, err)
	}
	return f, nil
}

// errLocked: another process holds the lock lockFile asked for.
var errLocked = errors.New("locked by another process")
