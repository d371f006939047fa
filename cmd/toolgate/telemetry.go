package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/internal/config"
)

// tracerName is the instrumentation scope of toolgate's spans.
const tracerName = "github.com/toolgate/toolgate"

// telemetry is the tracer the broker and the HTTP passthrough trace with,
// nil when tracing is off, and how to flush it at exit.
type telemetry struct {
	tracer   trace.Tracer
	shutdown func(context.Context) error
}

// otlpSettings is what decides whether and where spans are exported: the
// config's telemetry section, then the standard OpenTelemetry variables.
type otlpSettings struct {
	on       bool
	protocol string
}

// otlpFrom decides from the config and the environment. Tracing is off
// unless telemetry.otlp.endpoint is set, OTEL_TRACES_EXPORTER is otlp, or
// an OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set; OTEL_SDK_DISABLED=true
// and OTEL_TRACES_EXPORTER=none turn it off whatever the config says.
func otlpFrom(t config.Telemetry, env config.Env) (otlpSettings, error) {
	get := func(k string) string { v, _ := env(k); return strings.TrimSpace(v) }
	exporter := strings.ToLower(get("OTEL_TRACES_EXPORTER"))
	if strings.EqualFold(get("OTEL_SDK_DISABLED"), "true") || exporter == "none" {
		return otlpSettings{}, nil
	}
	if exporter != "" && exporter != "otlp" {
		return otlpSettings{}, fmt.Errorf("OTEL_TRACES_EXPORTER=%s: toolgate exports traces over OTLP only (otlp or none)", exporter)
	}
	s := otlpSettings{on: t.OTLP.Endpoint != "" || exporter == "otlp" ||
		get("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""}
	for _, p := range []string{t.OTLP.Protocol, get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), get("OTEL_EXPORTER_OTLP_PROTOCOL"), "http/protobuf"} {
		if p != "" {
			s.protocol = p
			break
		}
	}
	if s.protocol != "http/protobuf" && s.protocol != "grpc" {
		return otlpSettings{}, fmt.Errorf("OTLP protocol %q: toolgate exports over http/protobuf or grpc", s.protocol)
	}
	return s, nil
}

// openTelemetry builds the tracer provider: an OTLP exporter (the
// official SDK exporters, which read OTEL_EXPORTER_OTLP_* themselves;
// the config's endpoint and headers take precedence), a batch span
// processor, the sampler (sample_ratio, else OTEL_TRACES_SAMPLER, else
// parent-based always-on) and the resource (OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES, else service.name toolgate). Off, it returns
// a nil tracer and costs nothing.
func openTelemetry(ctx context.Context, t config.Telemetry, env config.Env, log *zap.Logger) (telemetry, error) {
	s, err := otlpFrom(t, env)
	if err != nil || !s.on {
		return telemetry{shutdown: func(context.Context) error { return nil }}, err
	}
	exp, err := otlpExporter(ctx, s.protocol, t.OTLP)
	if err != nil {
		return telemetry{}, fmt.Errorf("telemetry: %w", err)
	}
	res, err := resource.Merge(resource.NewSchemaless(semconv.ServiceName("toolgate"), semconv.ServiceVersion(version)),
		resource.Environment())
	if err != nil {
		return telemetry{}, fmt.Errorf("telemetry: resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exp), sdktrace.WithResource(res)}
	if t.SampleRatio != nil {
		opts = append(opts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*t.SampleRatio))))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	log.Info("tracing on: spans are exported over OTLP", zap.String("protocol", s.protocol))
	return telemetry{tracer: tp.Tracer(tracerName, trace.WithInstrumentationVersion(version)), shutdown: tp.Shutdown}, nil
}

// otlpExporter is the OTLP span exporter for protocol, with the config's
// endpoint and headers when it names them.
func otlpExporter(ctx context.Context, protocol string, o config.OTLP) (sdktrace.SpanExporter, error) {
	if protocol == "grpc" {
		var opts []otlptracegrpc.Option
		if o.Endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(o.Endpoint))
		}
		if len(o.Headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(o.Headers))
		}
		return otlptracegrpc.New(ctx, opts...)
	}
	var opts []otlptracehttp.Option
	if o.Endpoint != "" {
		opts = append(opts, otlptracehttp.WithEndpointURL(httpTracesURL(o.Endpoint)))
	}
	if len(o.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(o.Headers))
	}
	return otlptracehttp.New(ctx, opts...)
}

// httpTracesURL is the OTLP/HTTP traces URL of an endpoint: a base URL
// gets /v1/traces, as OTEL_EXPORTER_OTLP_ENDPOINT does; a URL that already
// names a path other than / is used as is, as the _TRACES_ variable is.
func httpTracesURL(endpoint string) string {
	rest := endpoint[strings.Index(endpoint, "://")+3:]
	if i := strings.IndexByte(rest, '/'); i < 0 || rest[i:] == "/" {
		return strings.TrimSuffix(endpoint, "/") + "/v1/traces"
	}
	return endpoint
}

// flush exports what is buffered, bounded so a collector that does not
// answer cannot hold the exit.
func (t telemetry) flush(log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.shutdown(ctx); err != nil {
		log.Warn("telemetry: spans not exported at exit", zap.Error(err))
	}
}
