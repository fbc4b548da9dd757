package node

import "net/http"

// webHandler serves the verification page at "/".
func (n *Node) webHandler() http.Handler { return http.NotFoundHandler() }
