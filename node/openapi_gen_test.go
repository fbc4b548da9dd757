package node

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/credence-ledger/credence/proto/credence/v1"
)

// The OpenAPI document (node/openapi/credence.openapi.json) is generated
// here, from what the server is built from: the gateway's routes
// (proto/credence/v1/api_http.yaml, the file its handlers are generated
// from), the messages' descriptors as protojson writes them with proto
// field names, the HTTP face's own routes and its error body. The node
// serves the document and admits requests by it (http.go), so it cannot
// drift from the server unnoticed: TestOpenAPIDocument fails when the
// committed file differs from what this makes, and TestHTTPGateway checks
// live answers against its schemas.
//
//	go test -tags badgerdb -run TestOpenAPIDocument ./node -update

const (
	openAPIFile   = "openapi/credence.openapi.json"
	httpRulesFile = "../proto/credence/v1/api_http.yaml"
	apiProtoFile  = "../proto/credence/v1/api.proto"
)

func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	doc, err := generateOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	if *updateGolden {
		if err := os.WriteFile(openAPIFile, doc, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	committed, err := os.ReadFile(openAPIFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, doc) {
		t.Fatalf("%s is not what the descriptors and routes make; run go test -tags badgerdb -run TestOpenAPIDocument ./node -update", openAPIFile)
	}
	if !bytes.Equal(openAPIJSON, doc) {
		t.Fatal("the embedded document is not the file")
	}
	// A hash in a path is hex or multibase (hashPathParams), not base64.
	var spec struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name, In string
				Schema   struct{ Format string }
			}
		}
	}
	if err := json.Unmarshal(doc, &spec); err != nil {
		t.Fatal(err)
	}
	for path, ops := range spec.Paths {
		for _, op := range ops {
			for _, p := range op.Parameters {
				if p.In == "path" && p.Schema.Format == "byte" {
					t.Errorf("%s: path parameter %s is declared base64", path, p.Name)
				}
			}
		}
	}
	// What admit reads of it: every route, its methods, which need the token.
	routes, err := parseRoutes(doc)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := readHTTPRules(httpRulesFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		i := slices.IndexFunc(routes, func(rt httpRoute) bool { return strings.Join(rt.segs, "/") == r.path })
		if i < 0 {
			t.Fatalf("route %s %s is not in the document", r.method, r.path)
		}
		if needs, ok := routes[i].methods[r.method]; !ok || needs != (r.method != "GET") {
			t.Fatalf("%s %s: in the document %v, token %v", r.method, r.path, ok, needs)
		}
	}
}

// httpRule is one rule of api_http.yaml.
type httpRule struct {
	rpc, method, path, body string
}

// readHTTPRules reads the rules of a google.api.Service HTTP file, in the
// one layout it has: "- selector:", then the method and path, then body.
func readHTTPRules(path string) ([]httpRule, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rules []httpRule
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		key, val, ok := strings.Cut(strings.TrimPrefix(line, "- "), ":")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		val = strings.Trim(strings.TrimSpace(val), `"`)
		switch key {
		case "selector":
			name := val[strings.LastIndex(val, ".")+1:]
			rules = append(rules, httpRule{rpc: name})
		case "get", "post", "put", "delete", "patch":
			if len(rules) == 0 {
				return nil, fmt.Errorf("%s: %q before a selector", path, line)
			}
			rules[len(rules)-1].method, rules[len(rules)-1].path = strings.ToUpper(key), val
		case "body":
			rules[len(rules)-1].body = val
		}
	}
	for _, r := range rules {
		if r.method == "" {
			return nil, fmt.Errorf("%s: %s has no route", path, r.rpc)
		}
	}
	return rules, sc.Err()
}

// rpcSummaries are the leading comments of the service's methods: the
// generated descriptors carry no comments.
func rpcSummaries(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string)
	var comment []string
	rpc := regexp.MustCompile(`^rpc (\w+)\(`)
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if c, ok := strings.CutPrefix(line, "//"); ok {
			comment = append(comment, strings.TrimSpace(c))
			continue
		}
		if m := rpc.FindStringSubmatch(line); m != nil {
			out[m[1]] = strings.Join(comment, " ")
		}
		comment = nil
	}
	return out, nil
}

type obj = map[string]any

func ref(name string) obj { return obj{"$ref": "#/components/schemas/" + name} }

// schemas builds components.schemas from message descriptors.
type schemas map[string]any

func (s schemas) message(md protoreflect.MessageDescriptor) obj {
	name := string(md.FullName())
	if _, ok := s[name]; ok {
		return ref(name)
	}
	s[name] = nil // a message may refer to itself
	props := obj{}
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		// The gateway writes proto field names (UseProtoNames).
		props[string(fd.Name())] = s.field(fd)
	}
	sch := obj{"type": "object", "properties": props, "additionalProperties": false}
	if md.Oneofs().Len() > 0 {
		var oneofs []string
		for i := range md.Oneofs().Len() {
			if od := md.Oneofs().Get(i); !od.IsSynthetic() {
				oneofs = append(oneofs, string(od.Name()))
			}
		}
		if len(oneofs) > 0 {
			sch["description"] = "At most one field of each oneof (" + strings.Join(oneofs, ", ") + ") is present."
		}
	}
	s[name] = sch
	return ref(name)
}

func (s schemas) field(fd protoreflect.FieldDescriptor) obj {
	if fd.IsMap() {
		return obj{"type": "object", "additionalProperties": s.single(fd.MapValue())}
	}
	if fd.IsList() {
		return obj{"type": "array", "items": s.single(fd)}
	}
	return s.single(fd)
}

// single is one value as protojson writes it: 64-bit integers as decimal
// strings, bytes as base64, enums by name.
func (s schemas) single(fd protoreflect.FieldDescriptor) obj {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return obj{"type": "boolean"}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return obj{"type": "integer", "format": "int32"}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return obj{"type": "integer", "format": "uint32", "minimum": 0}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return obj{"type": "string", "format": "int64", "pattern": `^-?[0-9]+$`}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return obj{"type": "string", "format": "uint64", "pattern": `^[0-9]+$`}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return obj{"type": "number"}
	case protoreflect.StringKind:
		return obj{"type": "string"}
	case protoreflect.BytesKind:
		return obj{"type": "string", "format": "byte", "description": "base64 (standard or URL alphabet)"}
	case protoreflect.EnumKind:
		return s.enum(fd.Enum())
	default: // message, group
		return s.message(fd.Message())
	}
}

func (s schemas) enum(ed protoreflect.EnumDescriptor) obj {
	name := string(ed.FullName())
	if _, ok := s[name]; !ok {
		var names []string
		for i := range ed.Values().Len() {
			names = append(names, string(ed.Values().Get(i).Name()))
		}
		s[name] = obj{"type": "string", "enum": names}
	}
	return ref(name)
}

// param is a path or query parameter: in a path and a query, 64-bit
// integers are plain numbers.
func (s schemas) param(fd protoreflect.FieldDescriptor) obj {
	var sch obj
	switch fd.Kind() {
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		sch = obj{"type": "integer", "format": "int64"}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		sch = obj{"type": "integer", "format": "uint64", "minimum": 0}
	default:
		sch = s.single(fd)
	}
	if fd.IsList() {
		return obj{"type": "array", "items": sch}
	}
	return sch
}

// goSchema describes a Go value as encoding/json writes it.
func goSchema(t reflect.Type) obj {
	switch t.Kind() {
	case reflect.String:
		return obj{"type": "string"}
	case reflect.Bool:
		return obj{"type": "boolean"}
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint32, reflect.Uint64:
		return obj{"type": "integer"}
	case reflect.Slice:
		if t == reflect.TypeFor[json.RawMessage]() {
			return obj{"type": "object"}
		}
		return obj{"type": "array", "items": goSchema(t.Elem())}
	case reflect.Struct:
		props := obj{}
		var required []string
		for i := range t.NumField() {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			props[name] = goSchema(f.Type)
			if !strings.Contains(opts, "omitempty") {
				required = append(required, name)
			}
		}
		return obj{"type": "object", "properties": props, "required": required}
	}
	panic("goSchema: " + t.String())
}

// signedStatusListDocument is what vc.StatusList builds and its issuer
// signs: the W3C fields only, the proof absent after a sponsor's update.
type signedStatusListDocument struct {
	Context           []string `json:"@context"`
	ID                string   `json:"id"`
	Type              []string `json:"type"`
	Issuer            string   `json:"issuer"`
	ValidFrom         string   `json:"validFrom"`
	CredentialSubject struct {
		ID            string `json:"id"`
		Type          string `json:"type"`
		StatusPurpose string `json:"statusPurpose"`
		EncodedList   string `json:"encodedList"`
		TTL           int64  `json:"ttl,omitempty"`
	} `json:"credentialSubject"`
	Proof json.RawMessage `json:"proof,omitempty"`
}

func jsonResponse(contentType string, schema obj) obj {
	return obj{"description": "The answer.", "content": obj{contentType: obj{"schema": schema}}}
}

var errorResponse = obj{"description": "An error: the gRPC code by number and name, and a message; the HTTP status is that of the code, or 405 (method not allowed) or 413 (body over max_http_body_bytes).",
	"content": obj{"application/json": obj{"schema": ref("Error")}}}

func generateOpenAPI() ([]byte, error) {
	rules, err := readHTTPRules(httpRulesFile)
	if err != nil {
		return nil, err
	}
	summaries, err := rpcSummaries(apiProtoFile)
	if err != nil {
		return nil, err
	}
	svc := pb.File_credence_v1_api_proto.Services().ByName("Credence")
	s := schemas{}
	s["Error"] = goSchema(reflect.TypeFor[httpError]())
	paths := obj{}
	addOp := func(path, method string, op obj) {
		ops, _ := paths[path].(obj)
		if ops == nil {
			ops = obj{}
			paths[path] = ops
		}
		ops[strings.ToLower(method)] = op
	}
	pathParam := func(name, description string, schema obj) obj {
		p := obj{"name": name, "in": "path", "required": true, "schema": schema}
		if description != "" {
			p["description"] = description
		}
		return p
	}
	hashParam := pathParam("hash", "The credential's SHA-256, in hex or multibase (not base64).", obj{"type": "string"})

	for _, r := range rules {
		m := svc.Methods().ByName(protoreflect.Name(r.rpc))
		if m == nil {
			return nil, fmt.Errorf("%s: no method %s", httpRulesFile, r.rpc)
		}
		in := m.Input()
		var params []any
		inPath := map[string]bool{}
		for _, seg := range strings.Split(r.path, "/") {
			name, ok := strings.CutPrefix(seg, "{")
			if !ok {
				continue
			}
			name = strings.TrimSuffix(name, "}")
			fd := in.Fields().ByName(protoreflect.Name(name))
			if fd == nil {
				return nil, fmt.Errorf("%s: %s has no field %s", r.path, in.FullName(), name)
			}
			inPath[name] = true
			if fd.Kind() == protoreflect.BytesKind && name == "hash" {
				params = append(params, hashParam) // hashPathParams
				continue
			}
			params = append(params, pathParam(name, "", s.param(fd)))
		}
		op := obj{"operationId": r.rpc, "summary": summaries[r.rpc], "tags": []string{"Credence"},
			"responses": obj{"200": jsonResponse("application/json", s.message(m.Output())), "default": errorResponse}}
		if r.body == "*" {
			op["requestBody"] = obj{"required": true, "content": obj{"application/json": obj{"schema": s.message(in)}}}
		} else {
			for i := range in.Fields().Len() {
				fd := in.Fields().Get(i)
				if inPath[string(fd.Name())] || fd.Kind() == protoreflect.MessageKind || fd.IsMap() {
					continue
				}
				params = append(params, obj{"name": string(fd.Name()), "in": "query", "required": false, "schema": s.param(fd)})
			}
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if r.method != "GET" {
			// Every write carries an issuer's token (api_http.yaml).
			op["security"] = []any{obj{"bearer": []string{}}}
		}
		addOp(r.path, r.method, op)
	}

	// The HTTP face's own routes (http.go, statuslist.go).
	// A status list with a url answers the BitstringStatusListCredential its
	// issuer signed (vc.StatusList plus the issuer's proof); one without
	// answers statusListDocument. Either way the headers say which.
	signedList := goSchema(reflect.TypeFor[signedStatusListDocument]())
	listHeaders := obj{
		headerListSigned: obj{"description": "true when the document carries its issuer's proof over exactly this state.", "schema": obj{"type": "boolean"}},
		headerListHeight: obj{"description": "The height whose state the answer is.", "schema": obj{"type": "integer"}},
	}
	listResponse := jsonResponse("application/vc+ld+json", obj{"anyOf": []any{signedList, goSchema(reflect.TypeFor[statusListDocument]())}})
	listResponse["headers"] = listHeaders
	addOp("/v1/statuslists/{issuer}/{id}", "GET", obj{"operationId": "StatusList", "tags": []string{"Files"},
		"summary": "A status list as a W3C Bitstring Status List credential, as of the newest height or the one asked for (docs/status.md). " +
			"With format=export, the status list export (protobuf JSON) that proves it against the genesis instead.",
		"parameters": []any{pathParam("issuer", "", obj{"type": "string"}), pathParam("id", "", obj{"type": "string"}),
			obj{"name": "height", "in": "query", "required": false, "schema": obj{"type": "integer"}, "description": "The list as of this height (410 when older than this node keeps)."},
			obj{"name": "timestamp", "in": "query", "required": false, "schema": obj{"type": "string", "format": "date-time"}, "description": "The list as of the last height whose block time is at most this RFC 3339 time."},
			obj{"name": "format", "in": "query", "required": false, "schema": obj{"type": "string", "enum": []string{"export"}}, "description": "export: the status list export with its ledger proofs."}},
		"responses": obj{"200": listResponse, "410": errorResponse, "default": errorResponse}})
	addOp("/receipts/{hash}.json", "GET", obj{"operationId": "ReceiptFile", "tags": []string{"Files"},
		"summary":    "A receipt in the file form a holder keeps (docs/receipt.md).",
		"parameters": []any{hashParam, obj{"name": "issuer", "in": "query", "required": false, "schema": obj{"type": "string"}}},
		"responses":  obj{"200": jsonResponse("application/json", obj{"type": "object"}), "default": errorResponse}})
	addOp("/genesis.json", "GET", obj{"operationId": "Genesis", "tags": []string{"Files"},
		"summary":   "The chain's genesis document, the trust root receipts are checked against.",
		"responses": obj{"200": jsonResponse("application/json", obj{"type": "object"})}})
	addOp("/openapi.json", "GET", obj{"operationId": "OpenAPI", "tags": []string{"Files"},
		"summary":   "This document.",
		"responses": obj{"200": jsonResponse("application/json", obj{"type": "object"})}})

	doc := obj{
		"openapi": "3.0.3",
		"info": obj{"title": "Credence member node HTTP API", "version": "v1",
			"description": "The JSON face of a node's gRPC API (docs/operations.md, \"HTTP API\"). Reads need no token; writes need \"Authorization: Bearer <token>\". " +
				"Field names are the proto field names; 64-bit integers are decimal strings and bytes base64, as protobuf JSON writes them. HEAD is served wherever GET is. " +
				"Generated by node/openapi_gen_test.go."},
		"paths": paths,
		"components": obj{
			"schemas": map[string]any(s),
			"securitySchemes": obj{"bearer": obj{"type": "http", "scheme": "bearer",
				"description": "An issuer's API token; the node keeps only its SHA-256 (token_sha256)."}},
		},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// checkOpenAPI checks a live answer against the document: the body of a
// 200 against the route's schema, of any other status against Error; no
// field the schema does not name, each value of its type.
func checkOpenAPI(t *testing.T, method, path string, status int, body []byte) {
	t.Helper()
	if err := answerMatches(openAPIJSON, method, path, status, body); err != nil {
		t.Errorf("%s %s: the answer does not match the OpenAPI document: %v\n%s", method, path, err, body)
	}
}

func answerMatches(spec []byte, method, path string, status int, body []byte) error {
	var doc obj
	if err := json.Unmarshal(spec, &doc); err != nil {
		return err
	}
	paths, _ := doc["paths"].(obj)
	var op obj
	for template, ops := range paths {
		rt := httpRoute{segs: strings.Split(template, "/")}
		if m, ok := ops.(obj); ok && rt.match(path) {
			op, _ = m[strings.ToLower(method)].(obj)
		}
	}
	if op == nil {
		return errors.New("no such route")
	}
	code := "200"
	if status != 200 {
		code = "default"
	}
	res, _ := op["responses"].(obj)[code].(obj)
	content, _ := res["content"].(obj)
	var sch obj
	for _, c := range content {
		sch, _ = c.(obj)["schema"].(obj)
	}
	if sch == nil {
		return fmt.Errorf("no schema for a %s answer", code)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	return matchSchema(doc, sch, v, "$")
}

func matchSchema(doc, sch obj, v any, at string) error {
	if r, ok := sch["$ref"].(string); ok {
		comps, _ := doc["components"].(obj)
		all, _ := comps["schemas"].(obj)
		if sch, ok = all[strings.TrimPrefix(r, "#/components/schemas/")].(obj); !ok {
			return fmt.Errorf("%s: no schema %s", at, r)
		}
	}
	if alts, ok := sch["anyOf"].([]any); ok {
		var errs []string
		for _, a := range alts {
			err := matchSchema(doc, a.(obj), v, at)
			if err == nil {
				return nil
			}
			errs = append(errs, err.Error())
		}
		return fmt.Errorf("%s: matches none of its schemas: %s", at, strings.Join(errs, "; "))
	}
	switch sch["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %T, want an object", at, v)
		}
		props, _ := sch["properties"].(obj)
		for k, fv := range m {
			fs, ok := props[k].(obj)
			if !ok {
				if extra, ok := sch["additionalProperties"].(obj); ok {
					fs = extra
				} else if props != nil {
					return fmt.Errorf("%s: field %q is not in the document", at, k)
				} else {
					continue
				}
			}
			if err := matchSchema(doc, fs, fv, at+"."+k); err != nil {
				return err
			}
		}
		if req, ok := sch["required"].([]any); ok {
			for _, k := range req {
				if _, ok := m[k.(string)]; !ok {
					return fmt.Errorf("%s: required field %q missing", at, k)
				}
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: %T, want an array", at, v)
		}
		for i, e := range a {
			if err := matchSchema(doc, sch["items"].(obj), e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case "string":
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: %T, want a string", at, v)
		}
		if p, ok := sch["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(s) {
			return fmt.Errorf("%s: %q does not match %s", at, s, p)
		}
		if e, ok := sch["enum"].([]any); ok && !slices.Contains(e, any(s)) {
			return fmt.Errorf("%s: %q is not one of %v", at, s, e)
		}
	case "integer":
		n, ok := v.(json.Number)
		if _, err := n.Int64(); !ok || err != nil {
			if _, err := strconv.ParseUint(string(n), 10, 64); !ok || err != nil {
				return fmt.Errorf("%s: %v, want an integer", at, v)
			}
		}
	case "number":
		if _, ok := v.(json.Number); !ok {
			return fmt.Errorf("%s: %v, want a number", at, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: %v, want a boolean", at, v)
		}
	default:
		// A schema this check cannot read would pass anything.
		return fmt.Errorf("%s: schema of type %v not checked", at, sch["type"])
	}
	return nil
}
