// Package openapi holds the API's contract: an OpenAPI 3.1 document of
// every /v1 route, kept in openapi.json beside this file and served at GET
// /v1/openapi.json. Tests keep it true rather than people: openapitest
// validates every request and response of the API's test suite against
// it, a test compares its routes with the router's, and another its stock
// kinds' payload schemas with what those kinds publish.
package openapi

import _ "embed"

// Document is the OpenAPI document (JSON).
//
//go:embed openapi.json
var Document []byte
