// Makes UserSig test vectors with the IM's own signing library for Node.js
// (npm package tls-sig-api-v2), so that the hub's verifier is checked
// against an implementation that is not its own.
//
//   npm install --prefix .cache/node --no-save tls-sig-api-v2@1.0.2
//   NODE_PATH=.cache/node/node_modules node hub/auth/testdata/usersig/gen.mjs > hub/auth/testdata/usersig/vectors.json
//
// With arguments "random N" it prints N vectors of random users, apps, keys
// and times instead, for the live cross-check in usersig_test.go.
import { createRequire } from "node:module";
import { randomBytes, randomInt } from "node:crypto";

const require = createRequire(import.meta.url);
const { Api } = require("tls-sig-api-v2");

// sign runs the library with its clock set to time (unix seconds).
function sign(app, key, user, time, expire, userbuf) {
  const now = Date.now;
  Date.now = () => time * 1000;
  try {
    const api = new Api(app, key);
    const usersig = userbuf ? api.genPrivateMapKey(user, expire, userbuf.room, userbuf.privileges) : api.genUserSig(user, expire);
    return { app: String(app), key, user, time, expire, userbuf: !!userbuf, usersig };
  } finally {
    Date.now = now;
  }
}

const out = [];
if (process.argv[2] === "random") {
  for (let i = 0; i < Number(process.argv[3] || 50); i++) {
    const app = 1400000000 + randomInt(99999999);
    const key = randomBytes(32).toString("hex");
    const user = randomBytes(1 + randomInt(24)).toString("base64url");
    const time = 1600000000 + randomInt(200000000);
    const expire = 1 + randomInt(86400 * 365);
    const userbuf = i % 5 === 4 ? { room: 1 + randomInt(4000000000), privileges: randomInt(256) } : null;
    out.push(sign(app, key, user, time, expire, userbuf));
  }
} else {
  const key = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
  out.push(sign(1400000000, key, "xiaojun", 1796100000, 86400 * 180));
  out.push(sign(1400000000, key, "administrator", 1796100000, 86400));
  out.push(sign(1400000000, key, "jared", 1796100000, 1));
  out.push(sign(1400000000, key, "用户-ü", 1796100000, 3600));
  out.push(sign(1400000001, "another key", "jared", 1700000000, 86400 * 3650));
  out.push(sign(1400000000, key, "xiaojun", 1796100000, 86400, { room: 10000, privileges: 255 }));
}
console.log(JSON.stringify(out, null, 1));
