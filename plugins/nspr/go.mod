module github.com/ecaphost/ecaphost/plugins/nspr

go 1.26

replace (
	github.com/ecaphost/ecaphost/sdk => ../../sdk
	github.com/ecaphost/ecaphost/shared/proto => ../../shared/proto
)
