// Package childproc ties a child process to the life of the process that
// starts it: the Redis servers and hubs that tests and the load tool
// start must not outlive a test binary that times out or is killed
// before its cleanups run.
package childproc
