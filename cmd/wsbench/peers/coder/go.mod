module wsauth/cmd/wsbench/peers/coder

go 1.26.0

replace wsauth => ../../../..

require (
	github.com/coder/websocket v1.8.15
	wsauth v0.0.0-00010101000000-000000000000
)
