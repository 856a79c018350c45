// The Argo CD health-check runner (gopher-lua, the Lua 5.1 VM Argo CD uses), pinned with a
// committed go.sum; scripts/argocd-lua.sh builds it.
module rolecall.local/tools/argocd-lua

go 1.24.0

require github.com/yuin/gopher-lua v1.1.1
