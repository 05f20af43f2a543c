package policy_test

import (
	"context"
	"fmt"

	"github.com/phivault/phivault/internal/policy"
)

// noFacts is a Facts with no care relationships and no consents.
type noFacts struct{}

func (noFacts) Relationships(context.Context, string, string) ([]string, error) { return nil, nil }
func (noFacts) Consents(context.Context, string) ([]policy.Consent, error)      { return nil, nil }

func ExampleNewEngine() {
	e, err := policy.NewEngine(policy.DefaultPolicies(), noFacts{})
	if err != nil {
		fmt.Println(err)
		return
	}
	nurse := policy.Principal{UserID: "n1", Roles: []string{"nurse"}, Practitioner: "pr1",
		Method: "password+totp", MFA: true, Trained: true}
	d := e.Decide(context.Background(), policy.Request{Principal: nurse, Action: policy.Read,
		Type: "Observation", ID: "o1", Patient: "p1", Purpose: "TREAT"})
	fmt.Println(d.Allow, d.Policies, d.Reason)

	operator := policy.Principal{UserID: "cli", Roles: []string{"operator"}, Method: "local-cli"}
	d = e.Decide(context.Background(), policy.Request{Principal: operator, Action: policy.Create,
		Type: "Observation", Patient: "p1"})
	fmt.Println(d.Allow, d.Policies)
	// Output:
	// false [default-deny] no policy allows this access
	// true [operator]
}
