// Package wsframe reads the frames a WebSocket client sends to a server
// and encodes the control frames a server sends back (RFC 6455, section
// 5), for connections without extensions.
//
// Start with [Reader]: it is fed the bytes read from the socket, as they
// come, and returns whole messages and control frames, checking what the
// RFC requires of a client (masked frames, no reserved bits or opcodes,
// control frames short and never fragmented, fragments in order) and the
// message size limit. A violation is an [*Error] carrying the close code
// to answer with. [AppendControl] and [AppendClose] encode the server's
// ping, pong and close frames.
package wsframe
