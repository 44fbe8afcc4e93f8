package callback

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"strconv"
	"time"
)

// MaxClockSkew is how far RequestTime may be from the hub's clock.
const MaxClockSkew = 60 * time.Second

// Sign returns the signature the IM backend sends for token and
// requestTime: the lowercase hex SHA-256 of their concatenation.
func Sign(token, requestTime string) string {
	sum := sha256.Sum256([]byte(token + requestTime))
	return hex.EncodeToString(sum[:])
}

// VerifySign checks a callback's Sign and RequestTime against the app's
// token. The comparison takes the same time wherever the first differing
// byte is, so a caller cannot find a valid signature byte by byte.
func VerifySign(token, requestTime, sign string, now time.Time) error {
	if requestTime == "" || sign == "" {
		return errors.New("Sign and RequestTime are required for this app")
	}
	sec, err := strconv.ParseInt(requestTime, 10, 64)
	if err != nil {
		return errors.New("RequestTime is not unix seconds")
	}
	if skew := now.Sub(time.Unix(sec, 0)); skew > MaxClockSkew || skew < -MaxClockSkew {
		return errors.New("RequestTime is more than 60s from the hub's clock")
	}
	want := Sign(token, requestTime)
	if subtle.ConstantTimeCompare([]byte(want), []byte(sign)) != 1 {
		return errors.New("Sign does not match")
	}
	return nil
}
