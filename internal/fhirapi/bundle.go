package fhirapi

import "net/http"

// bundle processes batch and transaction bundles.
func (a *API) bundle(c *call) error {
	c.ev.Interaction = "transaction"
	return errorf(http.StatusNotImplemented, "not-supported", "batch and transaction bundles are not supported yet")
}
