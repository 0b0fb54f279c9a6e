// Package mailbox is a magic-wormhole rendezvous ("mailbox") server: the
// WebSocket service that lets two clients holding the same code find each
// other, run their PAKE and exchange encrypted messages.
//
// It implements the server side of magic-wormhole's server protocol
// (https://github.com/magic-wormhole/magic-wormhole-protocols,
// server-protocol.md) as the Debian 12 clients speak it: JSON in WebSocket
// (RFC 6455) text frames; welcome, bind, list, allocate, claim, release,
// open, add, close and ping, each acknowledged with an ack; nameplates (the
// number in front of a code) that point at mailboxes; mailboxes that store
// every message, echo it to every open side and deliver it to a side that
// opens later. Beyond the reference server it enforces limits (message
// size, messages and bytes per mailbox, mailboxes, connections and command
// rate per client address, through internal/iplimit) and answers each with
// an error message, and it lets its embedder add commands after bind
// (Config.Commands), which `icebreaker serve` uses to hand out ICE servers,
// and serve plain HTTP beside the WebSocket path (Config.HTTP), rate-limited
// with the commands.
//
// State lives in memory and is written behind, in batches, to an SQLite
// database in WAL mode (Config.DBPath), so that a restarted server still
// has every nameplate, mailbox and message a client may come back to:
// clients that reconnect bind, claim and open again and receive the stored
// messages.
package mailbox
