package app

import "github.com/credence-ledger/credence/proof"

// testV3Handler is app version 3 of the upgradetest build and of the app
// tests: a small migration (proposal_ttl_blocks grows by one) and one rule
// change (a proposal needs a description). Unregistered in a release build.
var testV3Handler = upgradeHandler{
	migrate: func(a *App, _ int64) error {
		p, err := a.loadParams()
		if err != nil {
			return err
		}
		p.ProposalTtlBlocks++
		if err := a.put([]byte(proof.KeyParams), p); err != nil {
			return err
		}
		a.params = p
		return nil
	},
	rules: rules{proposalNeedsDescription: true},
}
