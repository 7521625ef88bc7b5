// placeholder: filled in by the ICE work (DESIGN D4)
#pragma once
