// Package render turns Vault's answers into the files the driver writes
// into a pod's volume and their versions: Extract picks an object's value
// (secretKey, jsonPath in select.go, a directory of keys) and decodes it;
// Template executes a template, reading secrets through the mount flow's
// ReadFunc within a budget (budget.go); Files assembles the MountResponse
// within the driver's size limit; versions are HMACs (version.go).
package render
