package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

const defaultAPIURL = "http://127.0.0.1:8080"

// fileConfig is the config file: $XDG_CONFIG_HOME/spool/config.json
// (os.UserConfigDir) or --config.
type fileConfig struct {
	APIURL      string `json:"api_url"`
	Token       string `json:"token"`
	DatabaseURL string `json:"database_url"`
	DBSchema    string `json:"db_schema"`
}

// settings are the resolved connection settings: a flag wins over the
// environment, which wins over the config file.
type settings struct {
	APIURL      string
	Token       string
	DatabaseURL string
	DBSchema    string
}

// defaultConfigPath is where the config file is looked for without
// --config; "" if there is no config directory.
func defaultConfigPath() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "spool", "config.json")
}

// readConfig reads the config file: the one --config names must exist;
// the default one may not.
func (a *app) readConfig() (fileConfig, error) {
	var fc fileConfig
	path, explicit := a.configPath, a.configPath != ""
	if !explicit {
		path = defaultConfigPath()
		if path == "" {
			return fc, nil
		}
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return fc, nil
	}
	if err != nil {
		return fc, usagef("config file: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return fc, usagef("config file %s: %v", path, err)
	}
	if fc.Token != "" {
		if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
			fmt.Fprintf(a.stderr, "spool: warning: %s holds a token and is readable by others (chmod 600 it)\n", path)
		}
	}
	return fc, nil
}

// settings resolves the connection settings from flags, environment and
// config file.
func (a *app) settings() (settings, error) {
	fc, err := a.readConfig()
	if err != nil {
		return settings{}, err
	}
	s := settings{
		APIURL:      firstOf(a.apiURL, os.Getenv("SPOOL_API_URL"), fc.APIURL, defaultAPIURL),
		Token:       firstOf(a.token, os.Getenv("SPOOL_API_TOKEN"), fc.Token),
		DatabaseURL: firstOf(os.Getenv("SPOOL_DATABASE_URL"), os.Getenv("DATABASE_URL"), fc.DatabaseURL),
		DBSchema:    firstOf(os.Getenv("SPOOL_DB_SCHEMA"), fc.DBSchema),
	}
	if strings.ContainsAny(s.Token, "\r\n") {
		return s, usagef("the API token holds a line break")
	}
	return s, nil
}

// baseURL checks the API URL: http or https, a host, no query.
func baseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err == nil && u.User != nil {
		return nil, usagef("API URL: put the token in SPOOL_API_TOKEN, not in the URL")
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, usagef("API URL %q: want http(s)://host[:port][/prefix]", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}
