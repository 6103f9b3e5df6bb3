// Package genclient is a Go client of the API generated from its OpenAPI
// document by oapi-codegen, a generator nobody here wrote: if the document
// is one a third party's tools can use, this package compiles, and its
// test enqueues a job through it (services/api/internal/httpapi). Do not
// edit client.gen.go; run go generate here (make openapi-generate), and
// make openapi-check fails while it differs from what the document gives.
package genclient

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 -config oapi-codegen.yaml ../openapi.json
