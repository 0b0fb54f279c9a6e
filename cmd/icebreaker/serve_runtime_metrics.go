package main

import (
	"bytes"
	"net/http"
	"strconv"

	"github.com/icebreaker-net/icebreaker/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
)

// The standard process_* and go_* series that dashboards expect (CPU,
// memory, file descriptors, goroutines, GC), from client_golang's
// collectors, appended to our own text output. internal/metrics keeps its
// []Metric API; only the /metrics handler of serve changes.

// runtimeRegistry gathers the process and Go runtime collectors. It is
// safe for concurrent use.
func runtimeRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// metricsHandler serves our metrics, then those of reg, in the text
// exposition format (version 0.0.4).
func metricsHandler(collect func() []metrics.Metric, reg prometheus.Gatherer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "405 method not allowed: use GET", http.StatusMethodNotAllowed)
			return
		}
		b, err := metrics.Append(nil, collect())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		buf := bytes.NewBuffer(b)
		families, err := reg.Gather()
		if err == nil {
			enc := expfmt.NewEncoder(buf, expfmt.NewFormat(expfmt.TypeTextPlain))
			for _, mf := range families {
				if err = enc.Encode(mf); err != nil {
					break
				}
			}
		}
		if err != nil {
			http.Error(w, "runtime metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", metrics.ContentType)
		w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
		w.Write(buf.Bytes()) // a client gone away is not our error
	})
}
