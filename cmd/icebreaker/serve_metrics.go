package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/icebreaker-net/icebreaker/internal/metrics"
	"github.com/icebreaker-net/icebreaker/internal/userstore"
	"github.com/icebreaker-net/icebreaker/stun/stunserver"
	"github.com/icebreaker-net/icebreaker/turn/turnserver"
	"github.com/icebreaker-net/icebreaker/wormhole/mailbox"
	"github.com/icebreaker-net/icebreaker/wormhole/transitrelay"
)

// The Prometheus endpoint of `icebreaker serve` (metrics.listen,
// --metrics): the STUN and TURN counters in the text exposition format.

// metricsServer is the HTTP server of the metrics endpoint: /metrics, and
// 404 for every other path. serve owns it: start runs it on one
// goroutine, and stop shuts it down and waits for that goroutine.
type metricsServer struct {
	ln     *net.TCPListener
	mux    *http.ServeMux // /metrics; serve adds /healthz and /readyz
	srv    *http.Server
	logger *slog.Logger
	done   chan struct{} // closed when the Serve goroutine returns; nil before start
	once   sync.Once
}

// Timeouts of the metrics endpoint: a scrape is one small request, so a
// client that takes longer is stuck or hostile.
const (
	metricsHeaderTimeout   = 5 * time.Second
	metricsReadTimeout     = 10 * time.Second
	metricsWriteTimeout    = 10 * time.Second
	metricsIdleTimeout     = time.Minute
	metricsShutdownTimeout = 2 * time.Second
)

func newMetricsServer(ln *net.TCPListener, collect func() []metrics.Metric, logger *slog.Logger) *metricsServer {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metricsHandler(collect, runtimeRegistry()))
	return &metricsServer{ln: ln, mux: mux, logger: logger, srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: metricsHeaderTimeout,
		ReadTimeout:       metricsReadTimeout,
		WriteTimeout:      metricsWriteTimeout,
		IdleTimeout:       metricsIdleTimeout,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug), // TLS probes, bad requests
	}}
}

// start serves the endpoint on a new goroutine, until stop.
func (m *metricsServer) start() {
	m.done = make(chan struct{})
	go func() {
		defer close(m.done)
		if err := m.srv.Serve(m.ln); !errors.Is(err, http.ErrServerClosed) {
			// STUN and TURN go on without the endpoint.
			m.logger.Error("metrics endpoint stopped", "addr", m.ln.Addr().String(), "err", err)
		}
	}()
}

// stop shuts the endpoint down: no new connection, a bounded wait for the
// scrapes in progress, then it closes what is left and waits for the
// goroutine of start. It may be called more than once, and before start.
func (m *metricsServer) stop() {
	m.once.Do(func() {
		if m.done == nil {
			m.ln.Close()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), metricsShutdownTimeout)
		defer cancel()
		if err := m.srv.Shutdown(ctx); err != nil {
			m.srv.Close()
		}
		<-m.done
	})
}

// serveMetrics gathers the metrics of a scrape: the counters of the STUN
// listeners, summed, and those of the TURN server when TURN is on (tr is
// not nil). It is safe for concurrent use; nothing here runs per packet.
func serveMetrics(servers []*stunserver.Server, tr *turnRelay, rv *rendezvous) []metrics.Metric {
	var st stunserver.Stats
	for _, s := range servers {
		st.Add(s.Stats())
	}
	var ts *turnserver.Stats
	if tr != nil {
		t := tr.server.Stats()
		ts = &t
	}
	ms := statsMetrics(st, ts)
	if rv != nil {
		var rs *transitrelay.Stats
		if rv.relay != nil {
			r := rv.relay.Stats()
			rs = &r
		}
		ms = append(ms, rendezvousMetrics(rv.mailbox.Stats(), rs)...)
	}
	if tr != nil && tr.pg != nil {
		ms = append(ms, pgMetrics(tr.pg.Stats())...)
	}
	return ms
}

// rendezvousMetrics turns the mailbox server's counters, and the transit
// relay's unless rs is nil, into metrics.
func rendezvousMetrics(m mailbox.Stats, rs *transitrelay.Stats) []metrics.Metric {
	gauge := func(name, help string, v int) metrics.Metric {
		return one(name, help, metrics.Gauge, float64(v))
	}
	ms := []metrics.Metric{
		gauge("icebreaker_rendezvous_connections", "Mailbox WebSocket connections open now.", m.Connections),
		counter("icebreaker_rendezvous_connections_accepted_total", "Mailbox connections accepted.", m.Accepted),
		counter("icebreaker_rendezvous_connections_refused_total", "Mailbox connections turned away (per-address limit, disabled).", m.Refused),
		counter("icebreaker_rendezvous_commands_total", "Mailbox client messages handled.", m.Commands),
		counter("icebreaker_rendezvous_errors_total", "Error messages sent to mailbox clients.", m.Errors),
		counters("icebreaker_rendezvous_refused_total", "Mailbox requests refused by a limit, by limit.", "limit",
			labelled{"rate", m.RateLimited}, labelled{"message_size", m.TooLarge}, labelled{"binary_frame", m.Binary},
			labelled{"mailbox_full", m.MailboxFull}, labelled{"mailboxes", m.MailboxesRefused}, labelled{"crowded", m.Crowded},
			labelled{"slow_client", m.SlowClients}),
		gauge("icebreaker_rendezvous_nameplates", "Nameplates claimed now.", m.Nameplates),
		gauge("icebreaker_rendezvous_mailboxes", "Mailboxes open now.", m.Mailboxes),
		gauge("icebreaker_rendezvous_messages", "Messages stored now.", m.Messages),
		counter("icebreaker_rendezvous_closed_total", "Mailboxes deleted after every side that opened them closed.", m.Closed),
		counter("icebreaker_rendezvous_completed_total", "Mailboxes two sides used and closed.", m.Rendezvous),
		counter("icebreaker_rendezvous_pruned_total", "Abandoned mailboxes and nameplates deleted.", m.Pruned),
		counters("icebreaker_rendezvous_closes_total", "Mailbox closes by mood; scary is a wrong code.", "mood",
			labelled{"happy", m.Happy}, labelled{"lonely", m.Lonely}, labelled{"scary", m.Scary}, labelled{"errory", m.Errory}, labelled{"other", m.OtherMood}),
		counter("icebreaker_rendezvous_db_errors_total", "Failed writes to the rendezvous database.", m.DBErrors),
	}
	if rs == nil {
		return ms
	}
	return append(ms,
		counter("icebreaker_transit_connections_total", "Transit relay connections accepted.", rs.Accepted),
		counters("icebreaker_transit_refused_total", "Transit relay connections closed early, by reason.", "reason",
			labelled{"per_address", rs.Refused}, labelled{"bad_handshake", rs.BadHandshake}, labelled{"lonely", rs.Lonely}),
		counter("icebreaker_transit_pairs_total", "Transit relay pairs made.", rs.Paired),
		counter("icebreaker_transit_over_budget_total", "Transit relay pairs cut at their byte or time budget.", rs.OverBudget),
		counter("icebreaker_transit_bytes_total", "Bytes relayed by the transit relay, both directions.", rs.Bytes),
		gauge("icebreaker_transit_waiting", "Transit relay connections waiting for their partner now.", rs.Waiting),
		gauge("icebreaker_transit_pairs", "Transit relay pairs relaying now.", rs.Pairs),
	)
}

// pgMetrics are the counters of a PostgreSQL user store.
func pgMetrics(st userstore.PGStats) []metrics.Metric {
	sample := func(v uint64) []metrics.Sample { return []metrics.Sample{{Value: float64(v)}} }
	connected := uint64(0)
	if st.Connected {
		connected = 1
	}
	return []metrics.Metric{
		{Name: "icebreaker_userstore_lookups_total", Help: "User lookups of the PostgreSQL user store, by whether the cache answered.", Kind: metrics.Counter,
			Samples: []metrics.Sample{
				{Labels: []metrics.Label{{Name: "cache", Value: "hit"}}, Value: float64(st.CacheHits)},
				{Labels: []metrics.Label{{Name: "cache", Value: "miss"}}, Value: float64(st.CacheMisses)},
			}},
		{Name: "icebreaker_userstore_lookup_errors_total", Help: "Lookups that missed the cache and failed because PostgreSQL did (answered 500).", Kind: metrics.Counter, Samples: sample(st.LookupErrs)},
		{Name: "icebreaker_userstore_outages_total", Help: "Times the PostgreSQL user store's LISTEN connection was lost or could not be made.", Kind: metrics.Counter, Samples: sample(st.Outages)},
		{Name: "icebreaker_userstore_notifications_total", Help: "User change notifications received from PostgreSQL.", Kind: metrics.Counter, Samples: sample(st.Notified)},
		{Name: "icebreaker_userstore_connected", Help: "1 while the PostgreSQL user store listens for changes (and caches), else 0.", Kind: metrics.Gauge, Samples: sample(connected)},
	}
}

// labelled is one sample of a metric with one label.
type labelled struct {
	value string
	v     uint64
}

// one is a metric with one unlabelled sample.
func one(name, help string, kind metrics.Kind, v float64) metrics.Metric {
	return metrics.Metric{Name: name, Help: help, Kind: kind, Samples: []metrics.Sample{{Value: v}}}
}

// counter is a counter with one unlabelled sample.
func counter(name, help string, v uint64) metrics.Metric {
	return one(name, help, metrics.Counter, float64(v))
}

// counters is a counter with one sample per value of label.
func counters(name, help, label string, vs ...labelled) metrics.Metric {
	m := metrics.Metric{Name: name, Help: help, Kind: metrics.Counter}
	for _, v := range vs {
		m.Samples = append(m.Samples, metrics.Sample{Labels: []metrics.Label{{Name: label, Value: v.value}}, Value: float64(v.v)})
	}
	return m
}

// statsMetrics turns the counters into metrics: every field of st, and of
// ts unless it is nil (TURN is off), and the build information.
func statsMetrics(st stunserver.Stats, ts *turnserver.Stats) []metrics.Metric {
	ms := []metrics.Metric{
		{Name: "icebreaker_build_info", Help: "The running icebreaker's version, in the label; always 1.", Kind: metrics.Gauge,
			Samples: []metrics.Sample{{Labels: []metrics.Label{{Name: "version", Value: version}}, Value: 1}}},
		counter("icebreaker_stun_requests_total", "STUN and TURN requests received on every listener, well-formed, any method.", st.Requests),
		counters("icebreaker_stun_responses_total", "Responses sent by the listeners, by result.", "result",
			labelled{"success", st.Responses}, labelled{"error", st.ErrorResponses}),
		counter("icebreaker_stun_delegated_messages_total", "Requests and indications handed to the TURN server.", st.Delegated),
		counter("icebreaker_stun_channel_data_messages_total", "TURN ChannelData messages handed to the TURN server.", st.ChannelData),
		counter("icebreaker_stun_malformed_packets_total", "Packets dropped: not STUN, unparsable, truncated or a wrong FINGERPRINT.", st.Malformed),
		counter("icebreaker_stun_dropped_messages_total", "Well-formed messages not answered: indications and responses.", st.Dropped),
		counter("icebreaker_stun_send_errors_total", "Responses the kernel refused to send.", st.SendErrors),
		counter("icebreaker_stun_read_errors_total", "Failed socket reads.", st.ReadErrors),
		one("icebreaker_stun_tcp_connections", "TCP and TLS connections open now.", metrics.Gauge, float64(st.TCPConns)),
		counter("icebreaker_stun_tcp_accepted_total", "TCP and TLS connections accepted.", st.TCPAccepted),
		counter("icebreaker_stun_tcp_rejected_total", "TCP and TLS connections closed at once because tcp.max_conns were open.", st.TCPRejected),
		counter("icebreaker_stun_tcp_idle_timeouts_total", "TCP and TLS connections closed after tcp.idle_timeout without a message.", st.TCPTimeouts),
		counter("icebreaker_stun_tls_handshake_errors_total", "TLS connections that failed their handshake.", st.TLSHandshakeErrors),
		counter("icebreaker_stun_queue_drops_total", "Messages dropped because a TCP or TLS connection's write queue was full.", st.QueueDrops),
		counter("icebreaker_stun_tcp_per_ip_rejected_total", "TCP and TLS connections closed at once because their address held tcp.conns_per_ip.", st.TCPPerIPRejected),
		counter("icebreaker_stun_tls_handshakes_refused_total", "TLS connections closed before the handshake because their address passed tcp.tls_handshakes_per_ip.", st.TLSHandshakesRefused),
		counter("icebreaker_stun_tcp_message_timeouts_total", "TCP and TLS connections closed because a message took longer than tcp.message_timeout to arrive.", st.TCPMessageTimeouts),
		counter("icebreaker_stun_tcp_frames_refused_total", "TCP and TLS connections closed because the TURN server refused a frame (ChannelData on a connection without a channel).", st.TCPFramesRefused),
		counter("icebreaker_stun_tcp_buffer_refused_total", "TCP and TLS connections closed because a message needed a read buffer when the budget was spent.", st.TCPBufferRefused),
		one("icebreaker_stun_tcp_buffered_bytes", "Bytes of read buffers TCP and TLS connections hold now beyond their first kilobyte.", metrics.Gauge, float64(st.TCPBufferedBytes)),
	}
	if ts == nil {
		return ms
	}
	return append(ms,
		one("icebreaker_turn_allocations", "TURN allocations now.", metrics.Gauge, float64(ts.Allocations)),
		one("icebreaker_turn_permissions", "TURN permissions now, over all allocations.", metrics.Gauge, float64(ts.Permissions)),
		one("icebreaker_turn_channels", "TURN channel bindings now.", metrics.Gauge, float64(ts.Channels)),
		one("icebreaker_turn_reservations", "Relay ports reserved by EVEN-PORT now.", metrics.Gauge, float64(ts.Reservations)),
		counters("icebreaker_turn_relayed_packets_total", "Packets relayed, client to peer (to_peer) and peer to client (to_client).", "direction",
			labelled{"to_peer", ts.ToPeerPackets}, labelled{"to_client", ts.ToClientPackets}),
		counters("icebreaker_turn_relayed_bytes_total", "Application bytes relayed, client to peer (to_peer) and peer to client (to_client).", "direction",
			labelled{"to_peer", ts.ToPeerBytes}, labelled{"to_client", ts.ToClientBytes}),
		counters("icebreaker_turn_dropped_packets_total", "Packets the relay dropped, by reason.", "reason",
			labelled{"policy", ts.DroppedPolicy}, labelled{"quota", ts.DroppedQuota}, labelled{"no_permission", ts.DroppedNoPermission},
			labelled{"no_allocation", ts.DroppedNoAllocation}, labelled{"malformed", ts.DroppedMalformed}),
		counters("icebreaker_turn_send_errors_total", "Relay sends that failed: to peers (the kernel refused) and to clients (full TCP queue, closed socket).", "direction",
			labelled{"to_peer", ts.SendErrors}, labelled{"to_client", ts.ClientSendErrors}),
		counter("icebreaker_turn_read_errors_total", "Failed relay socket reads.", ts.ReadErrors),
		counter("icebreaker_turn_gso_fallbacks_total", "Relay and listening sockets that fell back from UDP GSO to sendmmsg because the kernel refused it.", ts.GSODisabled),
		counters("icebreaker_turn_auth_failures_total", "TURN requests that failed authentication, by reason (the first challenge of an exchange is not counted).", "reason",
			labelled{"bad_request", ts.AuthBadRequest}, labelled{"wrong_realm", ts.AuthWrongRealm},
			labelled{"unknown_user", ts.AuthUnknownUser}, labelled{"bad_integrity", ts.AuthBadIntegrity},
			labelled{"stale_nonce", ts.AuthStaleNonce}, labelled{"expired_rest", ts.AuthExpiredREST},
			labelled{"lookup_error", ts.AuthLookupErrors}, labelled{"nonce_replay", ts.NonceReplays}),
		counters("icebreaker_turn_refused_total", "TURN requests refused by the peer policy (403) or a quota (486, 508), by which.", "quota",
			labelled{"policy", ts.RefusedPolicy}, labelled{"allocations_per_user", ts.RefusedAllocationsPerUser},
			labelled{"total_allocations", ts.RefusedTotalAllocations}, labelled{"relay_ports", ts.RefusedRelayPorts},
			labelled{"permissions_per_allocation", ts.RefusedPermissions}, labelled{"connects_per_allocation", ts.RefusedConnects},
			labelled{"connects_per_user", ts.RefusedUserConnects}, labelled{"tcp_connections_per_allocation", ts.RefusedTCPConnections},
			labelled{"descriptors", ts.RefusedDescriptors}),
		counter("icebreaker_turn_error_answers_rate_limited_total", "Error answers to unauthenticated requests not sent because the source address exceeded turn.quotas.error_rate_per_ip.", ts.ErrorsRateLimited),
	)
}
