// Package spc is the SecretProviderClass language: it turns what the driver
// sends with a mount (parameters, the pod's identity and tokens, the file
// permission) into validated Params and Objects, and reports every problem at
// once with the field and the fix: parameters in params.go, objects in
// objects.go, jsonPath in jsonpath.go, templates in template.go. It does no
// I/O; its parsers are fuzzed (FuzzParseRequest, FuzzPaths).
package spc
