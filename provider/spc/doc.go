// Package spc is the SecretProviderClass language: it turns what the
// secrets-store-csi-driver sends with a mount (the class's parameters with
// the pod's volumeAttributes over them, the pod's identity and tokens, the
// file permission) into typed, validated Params and Objects, and reports
// every problem at once with the field's path and the fix.
//
// Where things are parsed: the parameters (roleName, vaultAddress, the auth
// mount, TLS settings, audience) in params.go (Parse); the objects list and
// each object's fields (objectName, secretPath and its query, method,
// secretArgs, encoding, filePermission, layout, vaultToken and wrapTTL) in
// objects.go (ParseObjects), the jsonPath selector in jsonpath.go, and a
// template's syntax and its {{ secret }} calls in template.go. What an object
// compiles to (its Vault Call, Selector, Compiled template) is carried on the
// Object for the mount flow (package provider) and the renderer (package
// provider/render).
//
// The package does no I/O and knows neither Vault's client nor Kubernetes;
// its parsers are fuzzed here (FuzzParseRequest, FuzzPaths).
package spc
