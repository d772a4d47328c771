// Package docs is the handbook's directory. Its Go side embeds the engine
// contracts, the JSON Schemas of job events and job results, so that the
// code validating events and results (internal/contract) reads the very
// files the handbook links and engines are given.
package docs

import "embed"

// Paths of the contract schemas in Contracts (and under docs/).
const (
	EventSchema  = "schemas/events/job-event.schema.json"
	ResultSchema = "schemas/results/job-result.schema.json"
)

// Contracts holds the contract schemas, at EventSchema and ResultSchema.
//
//go:embed schemas/events/*.schema.json schemas/results/*.schema.json
var Contracts embed.FS
