package snowsim

import (
	"fmt"
	"reflect"

	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/parser"
)

// es5Violation returns the first ECMAScript 2015+ construct in a script,
// or "" for a script that is plain ES5. A Global-scope Business Rule runs
// in ES5 Standards mode, where such a script does not compile; goja itself
// accepts them, so the simulator looks for them in the syntax tree.
func es5Violation(name, src string) (string, error) {
	prog, err := parser.ParseFile(nil, name, src, 0)
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", name, err)
	}
	found := ""
	walkAST(reflect.ValueOf(prog), func(n any) bool {
		what := es2015Construct(n)
		if what != "" {
			found = what
			return false
		}
		return true
	})
	return found, nil
}

// es2015Construct names a node that ES5 does not have ("" for one it has).
func es2015Construct(n any) string {
	switch n := n.(type) {
	case *ast.ArrowFunctionLiteral:
		return "an arrow function"
	case *ast.TemplateLiteral:
		return "a template literal"
	case *ast.LexicalDeclaration:
		return "a " + n.Token.String() + " declaration"
	case *ast.ForLoopInitializerLexicalDecl:
		return "a " + n.LexicalDeclaration.Token.String() + " declaration"
	case *ast.ClassLiteral, *ast.ClassDeclaration:
		return "a class"
	case *ast.ForOfStatement:
		return "a for-of loop"
	case *ast.SpreadElement:
		return "a spread element"
	case *ast.ArrayPattern, *ast.ObjectPattern:
		return "destructuring"
	case *ast.PropertyShort:
		return "a shorthand property"
	case *ast.OptionalChain, *ast.Optional:
		return "optional chaining"
	case *ast.YieldExpression:
		return "a generator"
	case *ast.AwaitExpression:
		return "await"
	case *ast.FunctionLiteral:
		if n.Async || n.Generator {
			return "an async or generator function"
		}
		if n.ParameterList != nil && n.ParameterList.Rest != nil {
			return "a rest parameter"
		}
		if n.ParameterList != nil {
			for _, b := range n.ParameterList.List {
				if b.Initializer != nil {
					return "a default parameter"
				}
			}
		}
	}
	return ""
}

var astPkg = reflect.TypeOf(ast.Program{}).PkgPath()

// walkAST visits every node of the goja syntax tree below v, depth first,
// until visit returns false.
func walkAST(v reflect.Value, visit func(any) bool) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return true
		}
		if v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct && v.Elem().Type().PkgPath() == astPkg {
			if !visit(v.Interface()) {
				return false
			}
		}
		return walkAST(v.Elem(), visit)
	case reflect.Struct:
		if v.Type().PkgPath() != astPkg {
			return true // file positions and the like
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() && !walkAST(v.Field(i), visit) {
				return false
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			if !walkAST(v.Index(i), visit) {
				return false
			}
		}
	}
	return true
}
