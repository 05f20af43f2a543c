package fhirpath

import (
	"fmt"
	"strings"
)

// nodeKind is the kind of an AST node.
type nodeKind int

const (
	nLiteral  nodeKind = iota // lit holds the constant collection
	nIdent                    // name: a member invocation on the focus ($this)
	nExternal                 // name: %name
	nSpecial                  // name: $this, $index, $total
	nChild                    // kids[0].name
	nCall                     // kids[0].name(args...); kids[0] is nil for a call on the focus
	nIndex                    // kids[0][kids[1]]
	nUnary                    // op kids[0]
	nBinary                   // kids[0] op kids[1]
	nType                     // kids[0] is/as name
)

// node is one AST node. The tree is immutable after parsing and may be
// evaluated concurrently.
type node struct {
	kind nodeKind
	op   string
	name string
	lit  Collection
	kids []*node
	args []*node
}

// Expression is a parsed FHIRPath expression, safe for concurrent use.
type Expression struct {
	src  string
	root *node
}

// String returns the source text of the expression.
func (e *Expression) String() string { return e.src }

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 200

// Parse parses a FHIRPath expression. It never panics; a syntax error is
// returned with the offending position.
func Parse(src string) (*Expression, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	n, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, fmt.Errorf("fhirpath: unexpected %q at %d", t.text, t.pos)
	}
	return &Expression{src: src, root: n}, nil
}

// MustParse is Parse for expressions known at compile time; it panics on error.
func MustParse(src string) *Expression {
	e, err := Parse(src)
	if err != nil {
		panic(err)
	}
	return e
}

type parser struct {
	toks  []token
	i     int
	depth int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

// binary operator precedence, higher binds tighter (FHIRPath §4 / grammar order).
var precedence = map[string]int{
	"implies": 1, "or": 2, "xor": 2, "and": 3, "in": 4, "contains": 4,
	"=": 5, "~": 5, "!=": 5, "!~": 5, "<": 6, ">": 6, "<=": 6, ">=": 6,
	"|": 7, "is": 8, "as": 8, "+": 9, "-": 9, "&": 9, "*": 10, "/": 10, "div": 10, "mod": 10,
}

// binOp returns the binary operator at the cursor, if any.
func (p *parser) binOp() (string, int) {
	t := p.peek()
	if t.kind != tOp && t.kind != tIdent {
		return "", 0
	}
	prec, ok := precedence[t.text]
	if !ok {
		return "", 0
	}
	return t.text, prec
}

func (p *parser) expr(minPrec int) (*node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, fmt.Errorf("fhirpath: expression nested too deeply")
	}
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		op, prec := p.binOp()
		if op == "" || prec <= minPrec {
			return left, nil
		}
		p.next()
		if op == "is" || op == "as" {
			name, err := p.typeSpec()
			if err != nil {
				return nil, err
			}
			left = &node{kind: nType, op: op, name: name, kids: []*node{left}}
			continue
		}
		right, err := p.expr(prec)
		if err != nil {
			return nil, err
		}
		left = &node{kind: nBinary, op: op, kids: []*node{left, right}}
	}
}

func (p *parser) unary() (*node, error) {
	if t := p.peek(); t.kind == tOp && (t.text == "+" || t.text == "-") {
		p.next()
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxDepth {
			return nil, fmt.Errorf("fhirpath: expression nested too deeply")
		}
		k, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &node{kind: nUnary, op: t.text, kids: []*node{k}}, nil
	}
	return p.postfix()
}

func (p *parser) postfix() (*node, error) {
	n, err := p.term()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		switch {
		case t.kind == tOp && t.text == ".":
			p.next()
			n, err = p.invocation(n)
		case t.kind == tOp && t.text == "[":
			p.next()
			var idx *node
			if idx, err = p.expr(0); err == nil {
				err = p.expect("]")
			}
			n = &node{kind: nIndex, kids: []*node{n, idx}}
		default:
			return n, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// invocation parses what follows a '.' (or starts a term): a member name or
// a function call. on is nil for an invocation on the focus.
func (p *parser) invocation(on *node) (*node, error) {
	t := p.next()
	var name string
	switch t.kind {
	case tIdent, tDelimIdent:
		name = t.text
	case tSpecial:
		if on == nil {
			return &node{kind: nSpecial, name: t.text}, nil
		}
		fallthrough
	default:
		return nil, fmt.Errorf("fhirpath: expected identifier at %d, found %q", t.pos, t.text)
	}
	if t.kind == tIdent && p.peek().kind == tOp && p.peek().text == "(" {
		p.next()
		args, err := p.args()
		if err != nil {
			return nil, err
		}
		return &node{kind: nCall, name: name, kids: []*node{on}, args: args}, nil
	}
	if on == nil {
		return &node{kind: nIdent, name: name}, nil
	}
	return &node{kind: nChild, name: name, kids: []*node{on}}, nil
}

func (p *parser) args() ([]*node, error) {
	var args []*node
	if t := p.peek(); t.kind == tOp && t.text == ")" {
		p.next()
		return nil, nil
	}
	for {
		a, err := p.expr(0)
		if err != nil {
			return nil, err
		}
		args = append(args, a)
		t := p.next()
		if t.kind == tOp && t.text == ")" {
			return args, nil
		}
		if t.kind != tOp || t.text != "," {
			return nil, fmt.Errorf("fhirpath: expected ',' or ')' at %d", t.pos)
		}
	}
}

func (p *parser) expect(op string) error {
	if t := p.next(); t.kind != tOp || t.text != op {
		return fmt.Errorf("fhirpath: expected %q at %d, found %q", op, t.pos, t.text)
	}
	return nil
}

func (p *parser) typeSpec() (string, error) {
	var parts []string
	for {
		t := p.next()
		if t.kind != tIdent && t.kind != tDelimIdent {
			return "", fmt.Errorf("fhirpath: expected type name at %d", t.pos)
		}
		parts = append(parts, t.text)
		if n := p.peek(); n.kind != tOp || n.text != "." || p.toks[p.i+1].kind != tIdent {
			return strings.Join(parts, "."), nil
		}
		p.next()
	}
}

func (p *parser) term() (*node, error) {
	t := p.peek()
	switch t.kind {
	case tString:
		p.next()
		return &node{kind: nLiteral, lit: Collection{sys(t.text)}}, nil
	case tNumber:
		p.next()
		return p.number(t)
	case tDate, tTime:
		p.next()
		v, err := parseTemporalLiteral(t.text)
		if err != nil {
			return nil, fmt.Errorf("fhirpath: at %d: %w", t.pos, err)
		}
		return &node{kind: nLiteral, lit: Collection{sys(v)}}, nil
	case tExternal:
		p.next()
		return &node{kind: nExternal, name: t.text}, nil
	case tSpecial:
		return p.invocation(nil)
	case tIdent, tDelimIdent:
		if t.kind == tIdent {
			switch t.text {
			case "true", "false":
				p.next()
				return &node{kind: nLiteral, lit: Collection{sys(t.text == "true")}}, nil
			}
		}
		return p.invocation(nil)
	case tOp:
		switch t.text {
		case "(":
			p.next()
			n, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			return n, p.expect(")")
		case "{":
			p.next()
			return &node{kind: nLiteral}, p.expect("}")
		}
	}
	return nil, fmt.Errorf("fhirpath: unexpected %q at %d", t.text, t.pos)
}

// number parses a numeric literal and an optional quantity unit after it.
func (p *parser) number(t token) (*node, error) {
	num, err := parseNumberLiteral(t.text)
	if err != nil {
		return nil, fmt.Errorf("fhirpath: at %d: %w", t.pos, err)
	}
	u := p.peek()
	unit := ""
	switch {
	case u.kind == tString:
		unit = u.text
	case u.kind == tIdent && calendarUnits[u.text] != "":
		unit = u.text
	}
	if unit == "" {
		return &node{kind: nLiteral, lit: Collection{sys(num)}}, nil
	}
	p.next()
	return &node{kind: nLiteral, lit: Collection{sys(Quantity{Value: toDecimal(num), Unit: unit})}}, nil
}
