package main

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// secretFlagCase is one row of a table test of a flag that lists
// SdkAppid:secret items: the flags after the base ones, the environment,
// and either what the parsed list must be or a part of the error.
type secretFlagCase[T any] struct {
	name string
	args []string
	env  map[string]string
	want T
	err  string
}

// runSecretFlagCases parses base and each case's flags. An error must
// contain the case's, be one line and show none of secrets; a success
// must give want as got reads it from the Config, pass also (when set),
// and print a Config that shows none of secrets.
func runSecretFlagCases[T any](t *testing.T, base, secrets []string, cases []secretFlagCase[T], got func(*Config) T, also func(*testing.T, *Config)) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(append(append([]string(nil), base...), tc.args...), env(tc.env), &bytes.Buffer{})
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				assert.NotContains(t, err.Error(), "\n", "one line")
				for _, k := range secrets {
					assert.NotContains(t, err.Error(), k, "no key is echoed")
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got(&c))
			if also != nil {
				also(t, &c)
			}
			printed := fmt.Sprintf("%v %+v", c, c)
			for _, k := range secrets {
				assert.NotContains(t, printed, k, "a printed config hides the keys")
			}
		})
	}
}
