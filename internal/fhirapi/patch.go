package fhirapi

import (
	"net/http"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/phivault/phivault/internal/policy"
	"github.com/phivault/phivault/internal/records"
)

// patch applies a JSON Patch (RFC 6902) to the current version. The result
// must be a valid resource of the same type and id; the write is pinned to
// the version patched, so a concurrent change gives 409 or 412, never a
// lost update.
func (a *API) patch(c *call) error {
	c.ev.Interaction, c.ev.Action = "patch", "U"
	typ, id, ifMatch, err := c.instance()
	if err != nil {
		return err
	}
	raw, err := c.body("application/json-patch+json")
	if err != nil {
		return err
	}
	p, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		return errorf(http.StatusBadRequest, "structure", "the body is not a JSON Patch document")
	}
	cur, err := a.Records.Read(c.ctx, typ, id)
	if err != nil {
		return missing(typ, id, err)
	}
	if err := a.decideEntry(c, policy.Update, cur); err != nil {
		return err
	}
	if ifMatch != 0 && ifMatch != cur.VID {
		return errorf(http.StatusPreconditionFailed, "conflict", "the resource has changed: its version does not match If-Match")
	}
	out, err := p.ApplyWithOptions(cur.Body, &jsonpatch.ApplyOptions{SupportNegativeIndices: false, EnsurePathExistsOnAdd: false, AccumulatedCopySizeLimit: MaxBody})
	if err != nil {
		return errorf(http.StatusUnprocessableEntity, "processing", "the patch cannot be applied to the current version")
	}
	res, err := parseResource(out, typ)
	if err != nil {
		return err
	}
	if rid, _ := res["id"].(string); rid != id {
		return errorf(http.StatusUnprocessableEntity, "processing", "a patch may not change the resource id")
	}
	rs, err := a.commit(c, []records.Op{{Type: typ, ID: id, Resource: res, IfMatch: cur.VID}}, policy.Update)
	if err != nil {
		return err
	}
	a.writeResult(c, http.StatusOK, rs[0].Entry, false)
	return nil
}
