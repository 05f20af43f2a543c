package fhirapi

import "encoding/json"

// rawJSON embeds stored JSON in a response without re-encoding it.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return json.RawMessage(r).MarshalJSON() }
