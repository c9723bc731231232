// Command __PLUGIN_ID__ is a Switchyard plugin service: switchyard-plugin-bridge (or `switchyardctl dev`)
// calls it over HTTP for every event of the teams that enabled it. It answers every submitted or updated
// response with a greeting result. The handlers are in handler.go; this file only starts the server.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run())
}

func run() int {
	// switchyardctl dev passes the secret in the environment; `plugin new` also wrote it into .env.
	if err := loadDotEnv(".env"); err != nil {
		fmt.Fprintf(os.Stderr, "%s: reading .env: %v\n", pluginID, err)
		return 2
	}
	secret := os.Getenv("SWITCHYARD_SIGNING_SECRET")
	if secret == "" {
		fmt.Fprintln(os.Stderr, "set SWITCHYARD_SIGNING_SECRET (the plugin's signing secret, whsec_...; switchyardctl dev passes it)")
		return 2
	}
	manifest, err := os.ReadFile("manifest.json")
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v (run it from the project directory)\n", pluginID, err)
		return 2
	}
	if !json.Valid(manifest) {
		fmt.Fprintf(os.Stderr, "%s: manifest.json is not valid JSON\n", pluginID)
		return 2
	}
	plugin, err := NewPlugin(secret, manifest)
	if err != nil { // the message never contains the secret
		fmt.Fprintf(os.Stderr, "%s: SWITCHYARD_SIGNING_SECRET: %v\n", pluginID, err)
		return 2
	}

	host := envOr("HOST", "127.0.0.1")
	listener, err := net.Listen("tcp", net.JoinHostPort(host, envOr("PORT", "3000")))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", pluginID, err)
		return 1
	}
	_, port, _ := net.SplitHostPort(listener.Addr().String())
	fmt.Printf("%s listening on http://%s\n", pluginID, net.JoinHostPort(host, port))

	server := &http.Server{
		Handler:           plugin,
		ReadHeaderTimeout: 20 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()
	select {
	case err := <-served:
		fmt.Fprintf(os.Stderr, "%s: %v\n", pluginID, err)
		return 1
	case <-ctx.Done():
	}
	// Let calls in progress finish: the bridge counts an unanswered call as failed and retries it.
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := server.Shutdown(shutdown); err != nil {
		fmt.Fprintf(os.Stderr, "%s: shutdown: %v\n", pluginID, err)
		return 1
	}
	return 0
}

func envOr(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

// loadDotEnv sets the KEY=VALUE lines of path (if the file exists) that are not already set in the
// environment: the environment always wins. Blank lines and lines starting with # are skipped.
func loadDotEnv(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, found := strings.Cut(line, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !found || key == "" {
			continue
		}
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
			value = value[1 : len(value)-1]
		}
		if _, set := os.LookupEnv(key); !set {
			if err := os.Setenv(key, value); err != nil {
				return err
			}
		}
	}
	return nil
}
