package node

import "flag"

// updateGolden rewrites, from what the code makes now, the files this
// package's tests compare against: the pipeline scenarios' expected output
// (testdata/pipeline), the OpenAPI document (openapi/credence.openapi.json)
// and, from a new chain, the anchor vectors' source (vc/testdata/anchor/source).
// The flag has the name it has in every package of the module; name the test
// with -run, and read the diff before committing it.
var updateGolden = flag.Bool("update", false, "rewrite the files the tests compare against (testdata/pipeline, openapi/credence.openapi.json, vc/testdata/anchor/source) from the current output")
