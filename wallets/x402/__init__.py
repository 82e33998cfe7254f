"""x402: paying HTTP 402 APIs in USDC from an agent's own wallet.

`networks` pins the chains and USDC contracts we pay on, `protocol` reads a server's
402 and writes our answer (v1 and v2), `signing` signs EIP-3009 authorizations, and
`services` decides, records and signs one payment under the agent's caps.
"""
