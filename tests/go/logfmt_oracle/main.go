// An oracle for volguard's log lines that shares no code with volguard: logfmt is decoded by
// go-logfmt (Debian's golang-github-go-logfmt-logfmt-dev), JSON lines by encoding/json, and the
// fluent-bit configuration in deploy/fluent-bit/ is applied the way fluent-bit applies it (the
// parser's Time_Key and Time_Format, with a strptime of our own; the tail input's Path globs).
//
// Built offline in GOPATH mode (no module download):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=$(mktemp -d) go build -o oracle DIR
//
// Usage:
//
//	oracle decode FILE...
//	    One JSON object per log line on stdout: {"file","line","fields":[[key,value],...]} with
//	    every value a decoded string. Exits 1 naming file and line on a syntax error, a key
//	    given twice (a forged field), or a last line without its newline (a torn record).
//	oracle timecheck PARSERS_CONF PARSER_NAME FILE...
//	    Applies that [PARSER]'s Format (logfmt or json), Time_Key and Time_Format to every line
//	    and checks that each time parses, to the same instant RFC 3339 gives. Prints a count.
//	oracle globcheck FLUENT_BIT_CONF CONF_LOG_DIR LOG_DIR
//	    Checks the [INPUT] Path globs (with CONF_LOG_DIR replaced by LOG_DIR) against the files
//	    in LOG_DIR: each live log (volguard-*.log) is matched by exactly one input, a rotated one
//	    (volguard-*.log.N) by none; each tail input has a DB and Read_from_Head On. Prints what
//	    matched.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-logfmt/logfmt"
)

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "oracle: "+format+"\n", args...)
	os.Exit(1)
}

type field [2]string

// readLines returns the lines of a file; a last line without its newline is a torn record.
func readLines(file string) []string {
	data, err := os.ReadFile(file)
	if err != nil {
		die("%v", err)
	}
	if len(data) == 0 {
		return nil
	}
	if data[len(data)-1] != '\n' {
		die("%s: the last line has no newline (a torn record)", file)
	}
	return strings.Split(string(data[:len(data)-1]), "\n")
}

// decodeLogfmt decodes one line with go-logfmt's Decoder: exactly one record, no repeated key.
func decodeLogfmt(line string) ([]field, error) {
	dec := logfmt.NewDecoder(strings.NewReader(line))
	var out []field
	seen := map[string]bool{}
	records := 0
	for dec.ScanRecord() {
		records++
		for dec.ScanKeyval() {
			k := string(dec.Key())
			if seen[k] {
				return nil, fmt.Errorf("key %q appears twice", k)
			}
			seen[k] = true
			out = append(out, field{k, string(dec.Value())})
		}
	}
	if err := dec.Err(); err != nil {
		return nil, err
	}
	if records != 1 {
		return nil, fmt.Errorf("%d records in one line", records)
	}
	return out, nil
}

// decodeJSON decodes one JSON line into its fields in order; values other than strings are
// kept as their JSON text (the types are checked by the test, not here).
func decodeJSON(line string) ([]field, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object")
	}
	var out []field
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, _ := tok.(string)
		if seen[k] {
			return nil, fmt.Errorf("key %q appears twice", k)
		}
		seen[k] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			out = append(out, field{k, s})
		} else {
			out = append(out, field{k, string(raw)})
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after the object")
	}
	return out, nil
}

func decodeCmd(files []string) {
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for _, f := range files {
		for i, line := range readLines(f) {
			fields, err := decodeLogfmt(line)
			if err != nil {
				die("%s line %d: %v: %q", f, i+1, err, line)
			}
			rec := map[string]interface{}{"file": f, "line": i + 1, "fields": fields}
			b, _ := json.Marshal(rec)
			w.Write(b)
			w.WriteByte('\n')
		}
	}
}

// confSections reads fluent-bit's classic configuration format: [SECTION] headers, then
// "Key Value" lines; '#' starts a comment line; keys are case-insensitive.
func confSections(path string) [](map[string][]string) {
	data, err := os.ReadFile(path)
	if err != nil {
		die("%v", err)
	}
	var out []map[string][]string
	for _, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "@") {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			out = append(out, map[string][]string{"[section]": {strings.ToUpper(line[1 : len(line)-1])}})
			continue
		}
		if len(out) == 0 {
			die("%s: %q outside a section", path, line)
		}
		parts := strings.Fields(line)
		key := strings.ToLower(parts[0])
		value := strings.TrimSpace(strings.TrimPrefix(line, parts[0]))
		out[len(out)-1][key] = append(out[len(out)-1][key], value)
	}
	return out
}

func one(sec map[string][]string, key string) string {
	v := sec[strings.ToLower(key)]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// strptime parses s by a fluent-bit Time_Format: the strptime conversions our format uses, plus
// fluent-bit's %L (fractional seconds, up to nine digits). Everything else must match literally,
// and the whole string must be consumed (fluent-bit's Time_Strict, on by default).
func strptime(format, s string) (time.Time, error) {
	var year, month, day, hour, min, sec, nsec int
	month, day = 1, 1
	zone := time.UTC
	pos := 0
	digits := func(n int, what string) (int, error) {
		if pos+n > len(s) {
			return 0, fmt.Errorf("%s: want %d digits at %d", what, n, pos)
		}
		v, err := strconv.Atoi(s[pos : pos+n])
		if err != nil || strings.ContainsAny(s[pos:pos+n], "+- ") {
			return 0, fmt.Errorf("%s: %q is not %d digits", what, s[pos:pos+n], n)
		}
		pos += n
		return v, nil
	}
	var err error
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			if pos >= len(s) || s[pos] != c {
				return time.Time{}, fmt.Errorf("literal %q expected at %d", c, pos)
			}
			pos++
			continue
		}
		i++
		if i >= len(format) {
			return time.Time{}, fmt.Errorf("format ends in %%")
		}
		switch format[i] {
		case 'Y':
			year, err = digits(4, "%Y")
		case 'm':
			month, err = digits(2, "%m")
		case 'd':
			day, err = digits(2, "%d")
		case 'H':
			hour, err = digits(2, "%H")
		case 'M':
			min, err = digits(2, "%M")
		case 'S':
			sec, err = digits(2, "%S")
		case 'L':
			start := pos
			for pos < len(s) && pos-start < 9 && s[pos] >= '0' && s[pos] <= '9' {
				pos++
			}
			if pos == start {
				return time.Time{}, fmt.Errorf("%%L: no digits at %d", start)
			}
			frac := s[start:pos] + strings.Repeat("0", 9-(pos-start))
			nsec, _ = strconv.Atoi(frac)
		case 'z':
			if pos+5 > len(s) {
				return time.Time{}, fmt.Errorf("%%z: short")
			}
			h, e1 := strconv.Atoi(s[pos+1 : pos+3])
			m, e2 := strconv.Atoi(s[pos+3 : pos+5])
			if e1 != nil || e2 != nil || (s[pos] != '+' && s[pos] != '-') {
				return time.Time{}, fmt.Errorf("%%z: %q", s[pos:pos+5])
			}
			off := h*3600 + m*60
			if s[pos] == '-' {
				off = -off
			}
			zone = time.FixedZone("", off)
			pos += 5
		case '%':
			if pos >= len(s) || s[pos] != '%' {
				return time.Time{}, fmt.Errorf("literal %% expected at %d", pos)
			}
			pos++
		default:
			return time.Time{}, fmt.Errorf("conversion %%%c is not one this oracle knows", format[i])
		}
		if err != nil {
			return time.Time{}, err
		}
	}
	if pos != len(s) {
		return time.Time{}, fmt.Errorf("%q left over", s[pos:])
	}
	t := time.Date(year, time.Month(month), day, hour, min, sec, nsec, zone)
	if t.Year() != year || int(t.Month()) != month || t.Day() != day || t.Hour() != hour ||
		t.Minute() != min || t.Second() != sec {
		return time.Time{}, fmt.Errorf("not a valid date/time")
	}
	return t, nil
}

func timecheckCmd(conf, name string, files []string) {
	var parser map[string][]string
	for _, sec := range confSections(conf) {
		if sec["[section]"][0] == "PARSER" && one(sec, "Name") == name {
			parser = sec
		}
	}
	if parser == nil {
		die("%s: no [PARSER] named %s", conf, name)
	}
	format, key, tf := one(parser, "Format"), one(parser, "Time_Key"), one(parser, "Time_Format")
	if key == "" || tf == "" {
		die("parser %s: Time_Key and Time_Format are required", name)
	}
	if strings.EqualFold(one(parser, "Time_Keep"), "off") || one(parser, "Time_Keep") == "" {
		die("parser %s: Time_Keep must be On (the record keeps its own time field)", name)
	}
	if len(parser["types"]) > 0 && format == "logfmt" {
		// fluent-bit's logfmt parser packs every value raw (escapes undecoded) once Types is set.
		die("parser %s: Types on a logfmt parser turns off fluent-bit's unescaping of values", name)
	}
	n := 0
	now := time.Now()
	for _, f := range files {
		for i, line := range readLines(f) {
			var fields []field
			var err error
			switch format {
			case "logfmt":
				fields, err = decodeLogfmt(line)
			case "json":
				fields, err = decodeJSON(line)
			default:
				die("parser %s: Format %q is not one volguard writes", name, format)
			}
			if err != nil {
				die("%s line %d: %v", f, i+1, err)
			}
			value := ""
			found := false
			for _, kv := range fields {
				if kv[0] == key {
					value, found = kv[1], true
				}
			}
			if !found {
				die("%s line %d: no %s field", f, i+1, key)
			}
			t, err := strptime(tf, value)
			if err != nil {
				die("%s line %d: %s=%q does not match Time_Format %q: %v", f, i+1, key, value, tf, err)
			}
			ref, err := time.Parse(time.RFC3339Nano, value)
			if err != nil || !ref.Equal(t) {
				die("%s line %d: %q is %v by Time_Format but %v by RFC 3339 (%v)", f, i+1, value, t, ref, err)
			}
			if d := now.Sub(t); d < -time.Minute || d > 24*time.Hour {
				die("%s line %d: %q is not about now (%v): not UTC?", f, i+1, value, now.UTC())
			}
			n++
		}
	}
	fmt.Printf("%d times match %s Time_Format %s\n", n, name, tf)
}

func globcheckCmd(conf, confDir, logDir string) {
	var globs [][]string // per [INPUT] tail
	for _, sec := range confSections(conf) {
		if sec["[section]"][0] != "INPUT" || !strings.EqualFold(one(sec, "Name"), "tail") {
			continue
		}
		// The new file a rotation opens is found by a later scan: read from its head, or the
		// records written before that scan are skipped. Offsets must survive a restart.
		if rfh := strings.ToLower(one(sec, "Read_from_Head")); rfh != "on" && rfh != "true" {
			die("tail %s: Read_from_Head must be On", one(sec, "Path"))
		}
		if one(sec, "DB") == "" {
			die("tail %s: no DB (offsets would not survive a restart)", one(sec, "Path"))
		}
		var list []string
		for _, p := range strings.Split(one(sec, "Path"), ",") {
			p = strings.TrimSpace(p)
			if !strings.HasPrefix(p, confDir+"/") {
				die("Path %q is not under %s", p, confDir)
			}
			list = append(list, filepath.Join(logDir, strings.TrimPrefix(p, confDir+"/")))
		}
		globs = append(globs, list)
	}
	if len(globs) == 0 {
		die("%s: no tail input", conf)
	}
	entries, err := os.ReadDir(logDir)
	if err != nil {
		die("%v", err)
	}
	live := regexp.MustCompile(`^volguard-[a-z]+\.log$`)
	rotated := regexp.MustCompile(`^volguard-[a-z]+\.log\.[0-9]+$`)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var report bytes.Buffer
	nLive, nRotated := 0, 0
	for _, name := range names {
		path := filepath.Join(logDir, name)
		inputs := 0
		for _, list := range globs {
			for _, g := range list {
				if ok, err := filepath.Match(g, path); err != nil {
					die("bad glob %q: %v", g, err)
				} else if ok {
					inputs++
					break
				}
			}
		}
		switch {
		case live.MatchString(name):
			nLive++
			if inputs != 1 {
				die("live log %s is matched by %d tail inputs (want 1)", name, inputs)
			}
		case rotated.MatchString(name):
			nRotated++
			if inputs != 0 {
				die("rotated log %s is matched by a tail input: it would be shipped twice", name)
			}
		default:
			if inputs != 0 {
				die("%s is not a volguard log but a tail input matches it", name)
			}
		}
		fmt.Fprintf(&report, " %s:%d", name, inputs)
	}
	if nLive == 0 || nRotated == 0 {
		die("%s: want live and rotated logs to check against (have %d live, %d rotated)", logDir, nLive, nRotated)
	}
	fmt.Printf("globs ok (file:inputs)%s\n", report.String())
}

func main() {
	if len(os.Args) < 2 {
		die("usage: oracle decode FILE... | timecheck PARSERS_CONF NAME FILE... | globcheck CONF CONF_DIR DIR")
	}
	switch args := os.Args[2:]; os.Args[1] {
	case "decode":
		decodeCmd(args)
	case "timecheck":
		if len(args) < 3 {
			die("timecheck PARSERS_CONF PARSER_NAME FILE...")
		}
		timecheckCmd(args[0], args[1], args[2:])
	case "globcheck":
		if len(args) != 3 {
			die("globcheck FLUENT_BIT_CONF CONF_LOG_DIR LOG_DIR")
		}
		globcheckCmd(args[0], args[1], args[2])
	default:
		die("unknown command %s", os.Args[1])
	}
}
