// Command argocd-lua runs an Argo CD resource health check the way Argo CD does: the object
// (JSON, on stdin) is the global `obj` of a gopher-lua (Lua 5.1) state with only the libraries
// Argo CD opens for health scripts (package, base, table, a safe os), and the script's returned
// table {status, message} is printed as JSON.
//
//	argocd-lua SCRIPT < object.json
package main

import (
	"encoding/json"
	"fmt"
	"os"

	lua "github.com/yuin/gopher-lua"
)

func main() {
	if len(os.Args) != 2 {
		fail("usage: argocd-lua SCRIPT < object.json")
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail(err.Error())
	}
	var object map[string]any
	decoder := json.NewDecoder(os.Stdin)
	decoder.UseNumber()
	if err := decoder.Decode(&object); err != nil {
		fail("object: " + err.Error())
	}

	state := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer state.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		state.Push(state.NewFunction(lib.open))
		state.Push(lua.LString(lib.name))
		state.Call(1, 0)
	}
	state.SetGlobal("obj", toLua(state, object))
	if err := state.DoString(string(script)); err != nil {
		fail("script: " + err.Error())
	}
	result, ok := state.Get(-1).(*lua.LTable)
	if !ok {
		fail("the script did not return a table")
	}
	out, _ := json.Marshal(map[string]string{
		"status":  lua.LVAsString(result.RawGetString("status")),
		"message": lua.LVAsString(result.RawGetString("message")),
	})
	fmt.Println(string(out))
}

// toLua converts decoded JSON as Argo CD converts an unstructured object: maps and lists
// become tables (lists 1-based), numbers LNumber, null nil.
func toLua(state *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case map[string]any:
		table := state.NewTable()
		for key, item := range v {
			table.RawSetString(key, toLua(state, item))
		}
		return table
	case []any:
		table := state.NewTable()
		for _, item := range v {
			table.Append(toLua(state, item))
		}
		return table
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case json.Number:
		number, err := v.Float64()
		if err != nil {
			fail("number " + v.String())
		}
		return lua.LNumber(number)
	case nil:
		return lua.LNil
	default:
		fail(fmt.Sprintf("unexpected JSON value %T", value))
		return lua.LNil
	}
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, "argocd-lua:", message)
	os.Exit(1)
}
