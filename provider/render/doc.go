// Package render turns Vault's answers into the bytes of the files the
// driver writes into a pod's volume, and into their object versions.
//
// Where each file byte comes from: Extract (extract.go) picks an object's
// value out of one response — the whole response by default, secretKey from
// data.data (KV v2) or data, a jsonPath (select.go), or one file per key with
// layout: directory — and decodes it by its encoding; Template (template.go)
// executes a template object, reading the secrets it names through the
// ReadFunc the mount flow passes in; Files (files.go) assembles every
// object's files and modes into the MountResponse and enforces the driver's
// response size limit; Version (version.go) is the HMAC each object's
// version is.
//
// Objects arrive parsed and validated by package provider/spc; the package
// makes no Vault call of its own and never imports package provider.
package render
